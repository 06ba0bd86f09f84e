#!/usr/bin/python3
"""SmolVM's documented examples, run on a real gateway with only the import
changed (`from smolvm` -> `from porthole.smolvm`). Each block below is the
documentation's code as printed; the test runs it with exec(), captures
what it prints, and checks what it did. Blocks that use a `vm` without
creating one get the fixture's shared sandbox as `vm` (SmolVM.from_id).

Left out: examples that need an LLM, a third-party framework, a network
install (apt-get, apk, curl to the internet) or SmolVM's ImageBuilder.
"""

import contextlib
import io
import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdkfixture  # noqa: E402
from sdkfixture import TestFailure, check, check_eq  # noqa: E402

import porthole  # noqa: E402
from porthole.smolvm import SmolVM  # noqa: E402
from probes import gateway_has, gateway_has_ids  # noqa: E402

FX = sdkfixture.ensure()
SID = FX.shared_sandbox_id()


def run_block(code, env=None, expect=None):
    """Runs one documentation block; returns (printed text, namespace).
    expect: an exception class the block is documented to raise."""
    ns = dict(env or {})
    ns["__name__"] = "seed_example"
    out = io.StringIO()
    raised = None
    with contextlib.redirect_stdout(out):
        try:
            exec(compile(code, "<seed example>", "exec"), ns)
        except Exception as e:
            if expect is None or not isinstance(e, expect):
                sys.stdout.write(out.getvalue())
                raise
            raised = e
    if expect is not None and raised is None:
        raise TestFailure("the block should raise %s" % expect.__name__)
    ns["__raised__"] = raised
    return out.getvalue(), ns


def sandbox_ids():
    return {s["id"] for s in porthole.Sandbox.list(client=FX.client())}


def shared_vm():
    return SmolVM.from_id(SID)


# ---- seed 000: callbacks guide; seed 001: callback reference ----------------

SAFETY_GUARD = '''
from porthole.smolvm import SmolVM, Callback, CommandBlockedError

class SafetyGuard(Callback):
    DENY = ("rm -rf /", "mkfs", ":(){ :|:& };:")

    def on_pre_run(self, ctx):
        if any(bad in ctx.command for bad in self.DENY):
            raise CommandBlockedError(
                f"Blocked unsafe command: {ctx.command!r}",
                vm_id=ctx.vm_id,
                command=ctx.command,
            )

with SmolVM(callbacks=[SafetyGuard()]) as vm:
    vm.run("echo hello")     # runs normally
    vm.run("rm -rf /")       # raises CommandBlockedError; never reaches the guest
'''

AUDIT_LOG = '''
from porthole.smolvm import SmolVM, Callback

class AuditLog(Callback):
    def on_post_run(self, ctx):
        print(f"[{ctx.vm_id}] {ctx.command!r} -> exit={ctx.result.exit_code}")

    def on_run_error(self, ctx):
        print(f"[{ctx.vm_id}] {ctx.command!r} errored: {ctx.error}")

with SmolVM(callbacks=[AuditLog()]) as vm:
    vm.run("uname -r")
'''

HELLO_HOOK = '''
from porthole.smolvm import SmolVM, Callback

class HelloHook(Callback):
    def on_pre_run(self, ctx):
        print(f"about to run: {ctx.command}")

vm = SmolVM()
vm.add_callback(HelloHook())
vm.start()
vm.run("echo hi")
vm.stop()
vm.delete()
vm.close()
'''

REFERENCE_EXAMPLE = '''
from porthole.smolvm import SmolVM, Callback, CommandBlockedError

class SafetyGuard(Callback):
    DENY = ("rm -rf /", "mkfs", ":(){ :|:& };:")

    def on_pre_run(self, ctx):
        if any(bad in ctx.command for bad in self.DENY):
            raise CommandBlockedError(
                f"Blocked unsafe command: {ctx.command!r}",
                vm_id=ctx.vm_id,
                command=ctx.command,
            )

class AuditLog(Callback):
    def on_post_run(self, ctx):
        print(f"[{ctx.vm_id}] {ctx.command!r} -> exit={ctx.result.exit_code}")

with SmolVM(callbacks=[SafetyGuard(), AuditLog()]) as vm:
    vm.run("echo hello")
    try:
        vm.run("rm -rf /")
    except CommandBlockedError as e:
        print(f"refused: {e.command}")
'''


def test_safety_guard():
    before = sandbox_ids()
    out, ns = run_block(SAFETY_GUARD, expect=porthole.CommandBlockedError)
    e = ns["__raised__"]
    check_eq(e.command, "rm -rf /", "blocked command")
    check_eq(str(e), "Blocked unsafe command: 'rm -rf /'", "message")
    vm_id = ns["vm"].vm_id
    check_eq(e.details, {"vm_id": vm_id, "command": "rm -rf /"}, "details")
    check(FX.audit_for("echo hello", vm_id, wait=5), "echo hello should have run")
    check_eq(FX.audit_for("rm -rf /", vm_id), [], "rm -rf / reached the gateway")
    check_eq(sandbox_ids(), before, "the with block must delete its VM even on the error")


def test_audit_log():
    out, ns = run_block(AUDIT_LOG)
    vm_id = ns["vm"].vm_id
    check(out.startswith("[%s] 'uname -r' -> exit=0" % vm_id), "printed %r", out)
    check(vm_id not in sandbox_ids(), "deleted at exit")


def test_reference_example():
    out, ns = run_block(REFERENCE_EXAMPLE)
    vm_id = ns["vm"].vm_id
    check_eq(out, "[%s] 'echo hello' -> exit=0\nrefused: rm -rf /\n" % vm_id, "printed")
    check_eq(FX.audit_for("rm -rf /", vm_id), [], "rm -rf / reached the gateway")


def test_hello_hook():
    sdkfixture.skip_unless(gateway_has("stop"), "the example calls vm.stop(); the gateway has "
                           "no POST /v1/sandboxes/{id}/stop yet")
    out, ns = run_block(HELLO_HOOK)
    check_eq(out, "about to run: echo hi\n", "printed")
    check(ns["vm"].vm_id not in sandbox_ids(), "deleted")


# ---- seed 003: command execution -------------------------------------------

COMMAND_RESULT = '''
result = vm.run("ls -la /tmp")

# Exit code (0 = success)
print(result.exit_code)  # 0

# Standard output
print(result.stdout)

# Standard error
print(result.stderr)

# Convenience properties
print(result.ok)      # True if exit_code == 0
print(result.output)  # Stripped stdout
'''

WHOAMI = '''
result = vm.run("whoami")
if result.ok:
    print(f"Current user: {result.output}")
    # Output: Current user: root
'''

SHELL_LOGIN = '''
# Uses login shell - env vars from /etc/profile.d/ are loaded
result = vm.run("echo $PATH", shell="login")
'''

SHELL_RAW = '''
# Direct execution - no shell environment loading
result = vm.run("hostname", shell="raw")
'''

ENV_VARS = '''
from porthole.smolvm import SmolVM

with SmolVM() as vm:
    # Set environment variable
    vm.set_env_vars({"API_KEY": "secret-123"})
    
    # Login shell loads the env var
    result = vm.run("echo $API_KEY", shell="login")
    print(result.output)  # secret-123
'''

TIMEOUT = '''
from porthole.smolvm.exceptions import OperationTimeoutError

try:
    # Long-running command with 60s timeout
    result = vm.run(
        "apt-get update && apt-get install -y curl",
        timeout=60
    )
except OperationTimeoutError as e:
    print(f"Command timed out: {e.message}")
'''

CHECK_EXIT = '''
result = vm.run("./install.sh")
if not result.ok:
    raise RuntimeError(
        f"Installation failed (exit {result.exit_code}): {result.stderr}"
    )
'''

SSH_UNAVAILABLE = '''
from porthole.smolvm.exceptions import CommandExecutionUnavailableError

try:
    result = vm.run("whoami")
except CommandExecutionUnavailableError as e:
    print(f"SSH not available: {e.message}")
    print(f"Remediation: {e.remediation}")
'''

CAN_RUN = '''
if vm.can_run_commands():
    result = vm.run("whoami")
else:
    print("This VM doesn't support command execution")
    print("Rebuild with SSH_BOOT_ARGS or use SmolVM() auto-config")
'''


def test_command_result_example():
    out, ns = run_block(COMMAND_RESULT, {"vm": shared_vm()})
    r = ns["result"]
    check_eq((r.exit_code, r.ok), (0, True), "result")
    check(out.startswith("0\n") and "total" in out and out.endswith("True\n%s\n" % r.output),
          "printed %r", out[:300])
    out, _ = run_block(WHOAMI, {"vm": shared_vm()})
    check_eq(out, "Current user: root\n", "whoami example")


def test_shell_mode_examples():
    _, ns = run_block(SHELL_LOGIN, {"vm": shared_vm()})
    check("/usr/bin" in ns["result"].output, "login PATH %r", ns["result"].output)
    _, ns = run_block(SHELL_RAW, {"vm": shared_vm()})
    check(ns["result"].ok and ns["result"].output, "raw hostname %r", ns["result"])
    _, ns = run_block(CAN_RUN, {"vm": shared_vm()})
    check_eq(ns["result"].output, "root", "can_run_commands example")


def test_env_var_example():
    out, ns = run_block(ENV_VARS)
    check_eq(out, "secret-123\n", "printed")
    check(ns["vm"].vm_id not in sandbox_ids(), "deleted")


def test_timeout_example():
    vm = shared_vm()
    out, ns = run_block(TIMEOUT, {"vm": vm})
    # No internet here: apt-get fails or runs out of time. Either way the
    # block must end as documented: a result, or the timeout message.
    if "result" in ns:
        check(not ns["result"].ok, "apt-get without a network succeeded?")
        check_eq(out, "", "nothing printed without a timeout")
    else:
        check(out.startswith("Command timed out: "), "printed %r", out)
    check_eq(vm.run("echo ok").output, "ok", "usable after the timeout example")
    # The except branch, for certain: the same block with a command that
    # outlives its timeout (the only change).
    out, _ = run_block(TIMEOUT.replace("apt-get update && apt-get install -y curl",
                                       "sleep 90").replace("timeout=60", "timeout=2"),
                       {"vm": vm})
    check(out.startswith("Command timed out: ") and "2 s" in out, "printed %r", out)


def test_error_handling_examples():
    _, ns = run_block(CHECK_EXIT, {"vm": shared_vm()}, expect=RuntimeError)
    check("Installation failed (exit 127)" in str(ns["__raised__"]), "message %r",
          str(ns["__raised__"]))
    out, ns = run_block(SSH_UNAVAILABLE, {"vm": shared_vm()})
    check_eq((out, ns["result"].output), ("", "root"), "no exception when SSH is up")


# ---- seed 004 / 002: agents ------------------------------------------------

EXECUTE_CODE = '''
from porthole.smolvm import SmolVM

def execute_code_in_sandbox(code: str, language: str = "python") -> str:
    """Tool for AI agent to execute code safely.

    Args:
        code: The code to execute
        language: Programming language (python, bash, etc.)

    Returns:
        Execution output or error message
    """
    with SmolVM() as vm:
        if language == "python":
            # Write code to a file and execute
            vm.run(f"cat > /tmp/script.py << 'EOF'\\n{code}\\nEOF")
            result = vm.run("python3 /tmp/script.py", timeout=30)
        elif language == "bash":
            result = vm.run(code, timeout=30)
        else:
            return f"Unsupported language: {language}"

        if result.ok:
            return result.stdout
        else:
            return f"Error (exit {result.exit_code}): {result.stderr}"
'''

REUSABLE = '''
from dataclasses import dataclass
from porthole.smolvm import SmolVM

@dataclass
class SandboxDeps:
    vm_id: str | None = None

def _connect_vm(deps: SandboxDeps) -> SmolVM:
    """Return the active sandbox, creating it on first use."""
    if deps.vm_id is None:
        vm = SmolVM()
        vm.start()
        deps.vm_id = vm.vm_id
        return vm
    return SmolVM.from_id(deps.vm_id)

def _cleanup_vm(vm_id: str | None) -> None:
    """Delete the reusable sandbox if one was created."""
    if vm_id is None:
        return
    vm = SmolVM.from_id(vm_id)
    try:
        vm.delete()
    finally:
        vm.close()
'''

PERSISTENT_CREATE = '''
from porthole.smolvm import SmolVM, VMConfig

config = VMConfig(
    vm_id="agent-workspace",  # Stable ID for reconnection
    vcpu_count=2,
    mem_size_mib=2048,
)

vm = SmolVM(config)
vm.start()

print(f"Agent workspace ready: {vm.vm_id}")
vm.close()  # Release resources, keep VM running
'''

PERSISTENT_TASK = '''
from porthole.smolvm import SmolVM, VMState

def execute_agent_task(task: str) -> str:
    """Execute an agent task in the persistent workspace."""
    vm = SmolVM.from_id("agent-workspace")

    # Ensure VM is running
    if vm.status != VMState.RUNNING:
        vm.start()

    # Execute the task
    result = vm.run(task, timeout=120)
    vm.close()

    return result.stdout if result.ok else result.stderr
'''

PERSISTENT_CLEANUP = '''
from porthole.smolvm import SmolVM

vm = SmolVM.from_id("agent-workspace")
vm.stop()
vm.delete()
print("Workspace deleted")
'''


def test_execute_code_bash():
    _, ns = run_block(EXECUTE_CODE)
    before = sandbox_ids()
    out = ns["execute_code_in_sandbox"]("echo $((6*7)); uname -s", language="bash")
    check_eq(out, "42\nLinux\n", "bash tool output")
    check_eq(ns["execute_code_in_sandbox"]("x", language="ruby"), "Unsupported language: ruby",
             "unsupported language")
    check_eq(sandbox_ids(), before, "each call's VM is deleted")


def test_execute_code_python():
    has_python = porthole.Sandbox.from_id(SID, client=FX.client()).run(
        "command -v python3").ok
    sdkfixture.skip_unless(has_python, "the default sandbox image has no python3 (seed 004's "
                           "python path runs `python3 /tmp/script.py`)")
    _, ns = run_block(EXECUTE_CODE)
    out = ns["execute_code_in_sandbox"]("print(sum(range(10)))", language="python")
    check_eq(out, "45\n", "python tool output")


def test_reusable_sandbox_helpers():
    _, ns = run_block(REUSABLE)
    deps = ns["SandboxDeps"]()
    vm = ns["_connect_vm"](deps)
    try:
        check(deps.vm_id and deps.vm_id == vm.vm_id, "vm_id recorded")
        vm.run("echo hello > /tmp/note.txt")
        vm.close()
        check(deps.vm_id in sandbox_ids(), "close() must keep the VM running")
        again = ns["_connect_vm"](deps)
        check(again.attached, "second connect re-attaches")
        check_eq(again.run("cat /tmp/note.txt").output, "hello", "state across turns")
        again.close()
    finally:
        ns["_cleanup_vm"](deps.vm_id)
    check(deps.vm_id not in sandbox_ids(), "_cleanup_vm deletes")


def test_persistent_workspace():
    sdkfixture.skip_unless(gateway_has_ids() and gateway_has("stop") and gateway_has("start"),
                           "needs user-chosen ids and POST /v1/sandboxes/{id}/stop and /start; "
                           "the gateway lacks them")
    out, _ = run_block(PERSISTENT_CREATE)
    check_eq(out, "Agent workspace ready: agent-workspace\n", "printed")
    try:
        _, ns = run_block(PERSISTENT_TASK)
        task = ns["execute_agent_task"]
        check_eq(task("echo state > /root/ws.txt && cat /root/ws.txt"), "state\n", "task 1")
        SmolVM.from_id("agent-workspace").stop()
        check_eq(task("cat /root/ws.txt"), "state\n", "task after stop: start() and disk kept")
    finally:
        out, _ = run_block(PERSISTENT_CLEANUP)
    check_eq(out, "Workspace deleted\n", "printed")


if __name__ == "__main__":
    sdkfixture.run([
        test_command_result_example,
        test_shell_mode_examples,
        test_timeout_example,
        test_error_handling_examples,
        test_execute_code_python,
        test_hello_hook,
        test_persistent_workspace,
        test_safety_guard,
        test_audit_log,
        test_reference_example,
        test_env_var_example,
        test_execute_code_bash,
        test_reusable_sandbox_helpers,
    ])
