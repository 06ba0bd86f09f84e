"""What Sandbox and AsyncSandbox share: request bodies, option checks, and
turning API answers into results and typed errors. No I/O here."""

import json
import re
from typing import Any, Callable, Dict, Iterable, List, Optional

from .callbacks import CommandResult, LifecycleContext
from .client import error_is_missing_route, error_is_unknown_field, path_part
from .errors import (CommandBlockedError, CommandExecutionUnavailableError,
                     CommandTimeoutError, ConflictError, FeatureUnavailableError, NotFoundError,
                     OperationTimeoutError, PortholeError, SandboxExistsError,
                     SandboxNotFoundError, TransportError, UnavailableError, ValidationError,
                     from_api)

# SmolVM's identifier pattern, used for user-chosen sandbox ids.
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}[a-z0-9]$|^[a-z0-9]$")
SHELLS = ("login", "raw")
DEFAULT_RUN_TIMEOUT = 30
# How long past a command's own timeout the HTTP request may take.
RUN_HTTP_MARGIN_S = 60

FEATURE_ID = ("user-chosen sandbox ids", 'POST /v1/sandboxes {"id": ...}')
FEATURE_IMAGE = ("custom images", 'POST /v1/sandboxes {"image": ...}')
FEATURE_STOP = ("stopping a sandbox (power off, disk kept)", "POST /v1/sandboxes/{id}/stop")
FEATURE_START = ("starting a stopped sandbox", "POST /v1/sandboxes/{id}/start")
FEATURE_PORTS = ("exposing a guest port on the host", "POST /v1/sandboxes/{id}/ports")
FEATURE_PAUSE = ("pausing a sandbox", "POST /v1/sandboxes/{id}/pause")
FEATURE_RESUME = ("resuming a paused sandbox", "POST /v1/sandboxes/{id}/resume")
FEATURE_SNAPSHOT = ("snapshots", "POST /v1/sandboxes/{id}/snapshot")
FEATURE_FROM_SNAPSHOT = ("sandboxes from snapshots", 'POST /v1/sandboxes {"from_snapshot": ...}')


class PowerCall:
    """One of pause, resume, snapshot: the request, what an unknown route
    means, and the lifecycle hook it is reported to."""

    def __init__(self, vm_id: str, op: str, to_disk: bool = False) -> None:
        if op not in ("pause", "resume", "snapshot"):
            raise ValueError(op)
        self.path = sandbox_path(vm_id, "/" + op)
        self.body: Dict[str, Any] = {"to_disk": True} if op == "pause" and to_disk else {}
        self.what = op + " sandbox"
        self.feature = {"pause": FEATURE_PAUSE, "resume": FEATURE_RESUME,
                        "snapshot": FEATURE_SNAPSHOT}[op]
        self.hook = {"pause": "on_stop", "resume": "on_start", "snapshot": "on_snapshot"}[op]
        self.op = op
        self.vm_id = vm_id

    def context(self, answer: Dict[str, Any]) -> LifecycleContext:
        if self.op == "snapshot":
            return LifecycleContext(self.vm_id, "snapshot", "ready",
                                    snapshot_id=answer.get("snapshot_id"))
        return LifecycleContext(self.vm_id, self.op, answer.get("status"))

REMEDIATION = ("wait until the sandbox is ready (Sandbox.wait_for_ssh()), or check its status "
               "with Sandbox.info; a stopped sandbox needs start(), a paused one resume()")


def sandbox_path(vm_id: str, suffix: str = "") -> str:
    return "/v1/sandboxes/" + path_part(vm_id) + suffix


def check_id(vm_id: str) -> str:
    if not isinstance(vm_id, str) or not ID_PATTERN.match(vm_id):
        raise ValidationError(
            "vm_id %r must match %s (lowercase letters, digits, '-' and '_', 1-64 characters)"
            % (vm_id, ID_PATTERN.pattern), {"vm_id": vm_id})
    return vm_id


def check_env(env_vars: Optional[Dict[str, Any]]) -> Dict[str, str]:
    if env_vars is None:
        return {}
    if not isinstance(env_vars, dict):
        raise ValidationError("env_vars must be a dict of NAME: value")
    out = {}
    for k, v in env_vars.items():
        if not isinstance(k, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
            raise ValidationError("env_vars: %r is not a valid variable name" % (k,))
        if v is None:
            raise ValidationError("env_vars.%s must be a string, not None" % k)
        out[k] = str(v)
    return out


def check_network(network: Optional[str],
                  allowed_domains: Optional[Iterable[str]]) -> Dict[str, Any]:
    """The body fields of a network policy: "internet" (the gateway's
    default), "none", or only the hosts of allowed_domains ("host", or
    "*.domain" for its subdomains)."""
    out: Dict[str, Any] = {}
    if network is not None:
        if network not in ("internet", "none"):
            raise ValidationError('network must be "internet" or "none"')
        out["network"] = network
    if allowed_domains is not None:
        if isinstance(allowed_domains, str):
            raise ValidationError("allowed_domains must be a list of host names, not a string")
        domains = list(allowed_domains)
        if not all(isinstance(d, str) and d for d in domains):
            raise ValidationError("allowed_domains must be a list of host names")
        if network == "none" and domains:
            raise ValidationError('network="none" allows no domains')
        out["allowed_domains"] = domains
    return out


def create_body(vm_id: Optional[str], vcpus: Optional[int], mem_mib: Optional[int],
                disk_mib: Optional[int], env_vars: Dict[str, str],
                timeout_minutes: Optional[int], image: Optional[str],
                network: Optional[Dict[str, Any]] = None,
                from_snapshot: Optional[str] = None) -> Dict[str, Any]:
    body: Dict[str, Any] = {"wait": True}
    if from_snapshot is not None:
        body["from_snapshot"] = str(from_snapshot)
    body.update(network or {})
    if vm_id is not None:
        body["id"] = vm_id
    if vcpus is not None:
        body["vcpus"] = int(vcpus)
    if mem_mib is not None:
        body["mem_mib"] = int(mem_mib)
    if disk_mib is not None:
        body["disk_mib"] = int(disk_mib)
    if env_vars:
        body["env_vars"] = env_vars
    if timeout_minutes is not None:
        body["timeout_minutes"] = int(timeout_minutes)
    if image is not None:
        body["image"] = image
    return body


def create_error(err: PortholeError, body: Dict[str, Any]) -> PortholeError:
    if "id" in body and error_is_unknown_field(err, "id"):
        return FeatureUnavailableError(*FEATURE_ID, answer=err.message)
    if "image" in body and error_is_unknown_field(err, "image"):
        return FeatureUnavailableError(*FEATURE_IMAGE, answer=err.message)
    if "from_snapshot" in body and error_is_unknown_field(err, "from_snapshot"):
        return FeatureUnavailableError(*FEATURE_FROM_SNAPSHOT, answer=err.message)
    if "id" in body and isinstance(err, ConflictError):
        return SandboxExistsError(body["id"], err.message)
    return err


def lookup_error(err: PortholeError, vm_id: str) -> PortholeError:
    if isinstance(err, NotFoundError) and not error_is_missing_route(err):
        return SandboxNotFoundError(vm_id, err.message)
    return err


def feature_error(err: PortholeError, feature: tuple, vm_id: str) -> PortholeError:
    if error_is_missing_route(err):
        return FeatureUnavailableError(*feature, answer=err.message)
    return lookup_error(err, vm_id)


def check_run_args(command: str, shell: str, timeout: Any) -> int:
    if not isinstance(command, str) or not command:
        raise ValidationError("command must be a non-empty string")
    if shell not in SHELLS:
        raise ValidationError('shell must be "login" or "raw", got %r' % (shell,))
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValidationError("timeout must be a positive number of seconds, got %r" % (timeout,))
    # The API takes whole seconds; a fraction rounds up so a short timeout
    # never becomes none.
    t = int(timeout)
    return t if t == timeout else t + 1


def exec_body(command: str, shell: str, timeout: int, stream: bool = False) -> Dict[str, Any]:
    body: Dict[str, Any] = {"command": command, "shell": shell, "timeout": timeout}
    if stream:
        body["stream"] = True
    return body


# The HTTP status each API error code comes with (a streamed exec's error
# event carries the code alone).
_STATUS_OF_CODE = {"timeout": 504, "unavailable": 503, "transport": 502, "blocked": 403,
                   "conflict": 409, "not_found": 404, "internal": 500}


class ExecStream:
    """A streamed exec's events (newline-delimited JSON): output is handed to
    on_output(stream, text) as it arrives ("stdout" or "stderr") and kept
    for the CommandResult."""

    def __init__(self, on_output: Callable[[str, str], None]) -> None:
        self.on_output = on_output
        self.parts: Dict[str, List[str]] = {"stdout": [], "stderr": []}
        self.end: Optional[Dict[str, Any]] = None

    def line(self, raw: bytes) -> None:
        if not raw.strip():
            return
        ev = json.loads(raw)
        kind = ev.get("type")
        if kind in self.parts and isinstance(ev.get("data"), str):
            self.parts[kind].append(ev["data"])
            self.on_output(kind, ev["data"])
        elif kind in ("exit", "error"):
            self.end = ev

    def result(self, vm_id: str, command: str, timeout: int) -> CommandResult:
        if self.end is None:
            raise TransportError("the gateway's stream ended before the command did",
                                 {"vm_id": vm_id})
        if self.end.get("type") == "error":
            e = self.end.get("error") or {}
            code = e.get("code") if isinstance(e.get("code"), str) else None
            err = from_api(_STATUS_OF_CODE.get(code or "", 500), code,
                           str(e.get("message") or "the command failed"), "run")
            raise exec_error(err, vm_id, command, timeout)
        d = dict(self.end, stdout="".join(self.parts["stdout"]),
                 stderr="".join(self.parts["stderr"]))
        return result_from_json(d)


def result_from_json(d: Dict[str, Any]) -> CommandResult:
    return CommandResult(
        exit_code=int(d.get("exit_code", -1)),
        stdout=d.get("stdout") or "",
        stderr=d.get("stderr") or "",
        duration_ms=d.get("duration_ms"),
        stdout_truncated=bool(d.get("stdout_truncated", False)),
        stderr_truncated=bool(d.get("stderr_truncated", False)),
    )


def exec_error(err: PortholeError, vm_id: str, command: str, timeout: int) -> PortholeError:
    """The typed error of a failed exec."""
    status = getattr(err, "status", None)
    code = getattr(err, "code", None)
    out: PortholeError
    if code == "blocked" or (code is None and status == 403):
        out = CommandBlockedError(err.message, vm_id=vm_id, command=command)
    elif isinstance(err, OperationTimeoutError) and status == 504:
        out = CommandTimeoutError(command, timeout, vm_id=vm_id, message=err.message)
    elif isinstance(err, UnavailableError):
        out = CommandExecutionUnavailableError(vm_id, err.message, REMEDIATION)
    elif isinstance(err, ConflictError):
        # 409: the sandbox exists but is not ready (starting, stopped, stopping).
        out = CommandExecutionUnavailableError(vm_id, err.message, REMEDIATION)
    else:
        out = lookup_error(err, vm_id)
        if out is err:
            return err
    out.code = code
    out.status = status
    out.details.setdefault("code", code)
    out.__cause__ = err
    return out


def missing_stop_start(err: PortholeError) -> bool:
    return isinstance(err, FeatureUnavailableError)


def ports_body(guest_port: int, host_port: Optional[int],
               guest_loopback: bool = False) -> Dict[str, Any]:
    for name, p in (("guest_port", guest_port), ("host_port", host_port)):
        if p is None and name == "host_port":
            continue
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
            raise ValidationError("%s must be a port number 1..65535, got %r" % (name, p))
    body: Dict[str, Any] = {"guest_port": guest_port}
    if host_port is not None:
        body["host_port"] = host_port
    if guest_loopback:
        body["guest_loopback"] = True
    return body


def port_path(vm_id: str, guest_port: int) -> str:
    ports_body(guest_port, None)
    return sandbox_path(vm_id, "/ports/%d" % guest_port)


def port_from_json(d: Dict[str, Any]) -> int:
    hp = d.get("host_port")
    if not isinstance(hp, int):
        raise PortholeError("the gateway's port answer has no host_port: %r" % (d,))
    return hp


def sizing(kw: Dict[str, Any], vcpu_count: Optional[int], mem_size_mib: Optional[int],
           disk_size_mib: Optional[int]) -> Dict[str, Optional[int]]:
    """SmolVM's names (vcpu_count, mem_size_mib, disk_size_mib) and the API's
    (vcpus, mem_mib, disk_mib) both work; giving both of a pair is an error."""
    out = {}
    for smol, api, val in (("vcpu_count", "vcpus", vcpu_count),
                           ("mem_size_mib", "mem_mib", mem_size_mib),
                           ("disk_size_mib", "disk_mib", disk_size_mib)):
        alt = kw.pop(api, None)
        if val is not None and alt is not None and val != alt:
            raise ValidationError("give %s or %s, not both" % (smol, api))
        v = val if val is not None else alt
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ValidationError("%s must be a positive integer, got %r" % (smol, v))
        out[api] = v
    return out
