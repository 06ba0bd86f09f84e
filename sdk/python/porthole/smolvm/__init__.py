"""SmolVM's API on Porthole: change `from smolvm import ...` to
`from porthole.smolvm import ...` and SmolVM code runs against a Porthole
gateway.

SmolVM options Porthole has no use for (backend="firecracker",
ssh_key_path, boot_args) are accepted and ignored with a warning; options
whose meaning Porthole cannot honour (kernel_path, rootfs_path,
port_forwards, ...) raise UnsupportedOptionError naming the option.
"""

import warnings
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Dict, Iterable, List, Optional

from .. import _api
from ..browser import BrowserSession, BrowserSessionConfig, BrowserViewport
from ..callbacks import Callback, CommandResult, FileContext, LifecycleContext, RunContext
from ..client import Client
from ..errors import (CommandBlockedError, PortholeError, UnsupportedOptionError,
                      ValidationError)
from ..sandbox import Sandbox
from . import exceptions
from .exceptions import (CommandExecutionUnavailableError, OperationTimeoutError, SmolVMError,
                         VMAlreadyExistsError, VMNotFoundError)

# SmolVM's kernel command line for SSH-capable images. Porthole's images
# boot their own way; VMConfig(boot_args=...) is accepted and ignored.
SSH_BOOT_ARGS = "console=ttyS0 reboot=k panic=1 init=/init"


class VMState(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    ERROR = "error"


class BrowserSessionState(str, Enum):
    CREATED = "created"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    ERROR = "error"


_STATE_OF_STATUS = {
    "not_created": VMState.CREATED,
    "starting": VMState.CREATED,
    "ready": VMState.RUNNING,
    "running": VMState.RUNNING,
    "stopping": VMState.STOPPED,
    "stopped": VMState.STOPPED,
    "error": VMState.ERROR,
}

_IGNORED = {
    "boot_args": "Porthole's images have their own kernel command line",
    "backend": "Porthole runs every guest on QEMU",
    "ssh_key_path": "the gateway holds each VM's SSH keys",
    "comm_channel": "commands always travel through the gateway",
    "qemu_machine": "the gateway picks the machine type",
    "qemu_network": "the gateway owns guest networking",
    "ssh_capable": "every Porthole image runs sshd",
    "disk_mode": "every Porthole VM gets its own copy-on-write disk",
}
_UNSUPPORTED = {
    "kernel_path": "Porthole boots its own images; build one with `porthole image build NAME "
                   "--packages a,b` and pass image=NAME",
    "initrd_path": "Porthole boots its own images (see image=NAME)",
    "rootfs_path": "Porthole boots its own images; build one with `porthole image build NAME "
                   "--packages a,b` and pass image=NAME",
    "rootfs_format": "Porthole boots its own images (see image=NAME)",
    "extra_drives": "Porthole VMs have one disk",
    "port_forwards": "use vm.expose_local(guest_port) once the VM runs",
    "internet_settings": "egress policy is the gateway's configuration",
    "network_attachment": "the gateway owns guest networking",
    "workspace_mounts": "copy files in with vm.push_file()",
    "vsock": "commands always travel through the gateway",
    "ssh_public_key": "guests are reached through the gateway, not by SSH",
    "guest_os": "Porthole guests are Debian; pick an image with image=NAME",
    "macos_machine": "Porthole guests are Linux",
    "retain_disk_on_delete": "use vm.stop() to keep a VM's disk",
    "network_rate_limit_mbps": "not available",
    "grow_filesystem": "size the disk with disk_size_mib",
}


def _take_compat_options(opts: Dict[str, Any], where: str) -> None:
    for name in list(opts):
        if name in _IGNORED:
            value = opts.pop(name)
            if value is not None and value != "auto":
                warnings.warn("%s: %s=%r is ignored: %s" % (where, name, value, _IGNORED[name]),
                              stacklevel=4)
        elif name in _UNSUPPORTED:
            value = opts.pop(name)
            if value not in (None, [], {}, False):
                raise UnsupportedOptionError(name, _UNSUPPORTED[name])


@dataclass(frozen=True)
class VMConfig:
    """SmolVM's VMConfig, reduced to what a Porthole sandbox has. The
    SmolVM-only fields are accepted as keywords (see the module doc)."""

    vm_id: Optional[str] = None
    vcpu_count: int = 2
    mem_size_mib: Optional[int] = 512
    disk_size_mib: Optional[int] = None
    env_vars: Dict[str, str] = field(default_factory=dict)
    image: Optional[str] = None
    timeout_minutes: Optional[int] = None

    def __init__(self, vm_id: Optional[str] = None, vcpu_count: int = 2,
                 mem_size_mib: Optional[int] = None, disk_size_mib: Optional[int] = None,
                 env_vars: Optional[Dict[str, str]] = None, image: Optional[str] = None,
                 timeout_minutes: Optional[int] = None, *, memory: Optional[int] = None,
                 **compat: Any) -> None:
        _take_compat_options(compat, "VMConfig")
        if compat:
            raise TypeError("VMConfig() got unexpected options: %s" % ", ".join(sorted(compat)))
        if memory is not None:
            if mem_size_mib is not None and mem_size_mib != memory:
                raise ValidationError("give mem_size_mib or memory, not both")
            mem_size_mib = memory
        if mem_size_mib is None:
            mem_size_mib = 512  # SmolVM's default
        if vm_id is not None:
            _api.check_id(vm_id)
        if isinstance(vcpu_count, bool) or not isinstance(vcpu_count, int) or \
                not 1 <= vcpu_count <= 32:
            raise ValidationError("vcpu_count: Input should be between 1 and 32")
        if mem_size_mib is not None and (not isinstance(mem_size_mib, int) or
                                         not 128 <= mem_size_mib <= 16384):
            raise ValidationError("mem_size_mib: Input should be between 128 and 16384")
        object.__setattr__(self, "vm_id", vm_id)
        object.__setattr__(self, "vcpu_count", vcpu_count)
        object.__setattr__(self, "mem_size_mib", mem_size_mib)
        object.__setattr__(self, "disk_size_mib", disk_size_mib)
        object.__setattr__(self, "env_vars", _api.check_env(env_vars))
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "timeout_minutes", timeout_minutes)

    @property
    def memory(self) -> Optional[int]:
        return self.mem_size_mib


class SmolVM(Sandbox):
    """SmolVM's facade over a Porthole sandbox.

    SmolVM(config) or SmolVM(mem_size_mib=..., ...) describes a VM; start()
    (or `with`) creates and boots it. SmolVM.from_id(id) attaches to a
    running one: leaving its `with` block, or close(), detaches only."""

    def __init__(self, config: Optional[VMConfig] = None, *,
                 callbacks: Optional[Iterable[Callback]] = None, client: Optional[Client] = None,
                 url: Optional[str] = None, token: Optional[str] = None,
                 state_dir: Optional[str] = None, **options: Any) -> None:
        _take_compat_options(options, "SmolVM")
        if config is not None and not isinstance(config, VMConfig):
            raise ValidationError("config must be a VMConfig, got %s" % type(config).__name__)
        if options:
            base = {f.name: getattr(config, f.name) for f in fields(VMConfig)} if config else {}
            base.update(options)
            config = VMConfig(**base)
        self.config = config or VMConfig()
        super().__init__(self.config.vm_id, vcpu_count=self.config.vcpu_count,
                         mem_size_mib=self.config.mem_size_mib,
                         disk_size_mib=self.config.disk_size_mib,
                         env_vars=self.config.env_vars,
                         timeout_minutes=self.config.timeout_minutes, image=self.config.image,
                         callbacks=callbacks, client=client, url=url, token=token,
                         state_dir=state_dir)

    @classmethod
    def from_id(cls, vm_id: str, *, callbacks: Optional[Iterable[Callback]] = None,
                client: Optional[Client] = None, url: Optional[str] = None,
                token: Optional[str] = None, state_dir: Optional[str] = None,
                **compat: Any) -> "SmolVM":
        _take_compat_options(compat, "SmolVM.from_id")
        if compat:
            raise TypeError("from_id() got unexpected options: %s" % ", ".join(sorted(compat)))
        vm = cls(callbacks=callbacks, client=client, url=url, token=token, state_dir=state_dir)
        vm._id = vm_id
        vm._attached = True
        vm.refresh()
        return vm

    @property
    def status(self) -> VMState:  # type: ignore[override]
        raw = Sandbox.status.fget(self)  # type: ignore[attr-defined]
        return _STATE_OF_STATUS.get(raw, VMState.ERROR)

    def start(self, boot_timeout: Optional[float] = None) -> "SmolVM":  # type: ignore[override]
        super().start()
        return self

    def set_env_vars(self, env_vars: Dict[str, str], *, merge: bool = True) -> List[str]:
        """Sets variables for later login-shell commands; returns the names
        now set."""
        return sorted(self.set_env(env_vars, merge=merge))

    def get_env_vars(self) -> Dict[str, str]:
        return self.env

    def unset_env_vars(self, keys: Iterable[str]) -> List[str]:
        return sorted(self.unset_env(keys))

    def get_ip(self) -> str:
        raise UnsupportedOptionError("get_ip()", "guests are reached through the gateway; "
                                     "use expose_local(guest_port) for a service")

    def ssh_commands(self, *a: Any, **kw: Any) -> Dict[str, str]:
        raise UnsupportedOptionError("ssh_commands()", "guests are reached through the "
                                     "gateway: use run(), push_file() and pull_file()")

    def __repr__(self) -> str:
        return "<SmolVM %s>" % (self.vm_id or "(not created)")


__all__ = [
    "SmolVM", "VMConfig", "VMState", "Callback", "RunContext", "CommandResult",
    "LifecycleContext", "FileContext", "CommandBlockedError", "SmolVMError", "BrowserSession",
    "BrowserSessionConfig", "BrowserSessionState", "BrowserViewport", "SSH_BOOT_ARGS",
    "exceptions", "OperationTimeoutError", "CommandExecutionUnavailableError",
    "VMNotFoundError", "VMAlreadyExistsError", "PortholeError",
]
