"""Typed errors of the Porthole SDK.

Every error the SDK raises is a PortholeError. Errors the gateway reports
arrive as {"error": {"code", "message"}} and become the class that fits
their code (see from_api). The constructors follow SmolVM's exceptions, so
code written for those (`OperationTimeoutError(...).message`,
`CommandExecutionUnavailableError(...).remediation`, ...) reads the same.
"""

from typing import Any, Dict, Optional


class PortholeError(Exception):
    """Base of every SDK error. `message` is the text for a person; `details`
    a dict of the facts behind it; `code` and `status` the gateway's error
    code and HTTP status when the error came from the API."""

    code: Optional[str] = None
    status: Optional[int] = None

    def __init__(self, message: str, details: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})


class GatewayUnavailableError(PortholeError):
    """No gateway answers (or the local one could not be started)."""


class AuthenticationError(PortholeError):
    """The gateway refused the bearer token (401)."""


class ValidationError(PortholeError, ValueError):
    """Bad input: refused by the SDK before sending, or by the gateway (400)."""


class UnsupportedOptionError(ValidationError):
    """An option Porthole does not have and cannot safely ignore."""

    def __init__(self, option: str, hint: str = "") -> None:
        msg = "option %r is not supported by Porthole" % option
        if hint:
            msg += ": " + hint
        super().__init__(msg, {"option": option})
        self.option = option


class NotFoundError(PortholeError):
    """The gateway knows no such object (404)."""


class SandboxNotFoundError(NotFoundError):
    """No sandbox with this id (SmolVM: VMNotFoundError)."""

    def __init__(self, vm_id: str, message: Optional[str] = None) -> None:
        super().__init__(message or "VM '%s' not found" % vm_id, {"vm_id": vm_id})
        self.vm_id = vm_id


class BrowserSessionNotFoundError(NotFoundError):
    """No browser session with this id."""

    def __init__(self, session_id: str, message: Optional[str] = None) -> None:
        super().__init__(message or "Browser session '%s' not found" % session_id,
                         {"session_id": session_id})
        self.session_id = session_id


class ConflictError(PortholeError):
    """The object is in a state that does not allow this (409)."""


class SandboxExistsError(ConflictError):
    """A sandbox with the chosen id exists already (SmolVM: VMAlreadyExistsError)."""

    def __init__(self, vm_id: str, message: Optional[str] = None) -> None:
        super().__init__(message or "VM '%s' already exists" % vm_id, {"vm_id": vm_id})
        self.vm_id = vm_id


class TooLargeError(PortholeError):
    """A body or file beyond the gateway's bound (413)."""


class LimitExceededError(PortholeError):
    """A count limit of the gateway (sandboxes, sessions, queue) was hit (429)."""


class PermissionDeniedError(PortholeError):
    """The guest or the gateway refused access (403, other than a command block)."""


class OperationTimeoutError(PortholeError):
    """An operation did not finish in time (504, or a client-side wait).

    Signature as SmolVM's: OperationTimeoutError(operation, timeout_seconds)."""

    def __init__(self, operation: str, timeout_seconds: float, *,
                 recovery_command: Optional[str] = None, message: Optional[str] = None) -> None:
        details: Dict[str, Any] = {"operation": operation, "timeout_seconds": timeout_seconds}
        if message is None:
            if recovery_command is None:
                message = "Operation '%s' timed out after %ss" % (operation, timeout_seconds)
            else:
                message = "%s timed out after %ss; retry with '%s'" % (
                    operation, timeout_seconds, recovery_command)
        if recovery_command is not None:
            details["recovery_command"] = recovery_command
        super().__init__(message, details)
        self.operation = operation
        self.timeout_seconds = timeout_seconds
        self.recovery_command = recovery_command


class CommandTimeoutError(OperationTimeoutError):
    """A command ran past its timeout; the guest killed it. The sandbox stays usable."""

    def __init__(self, command: str, timeout_seconds: float, vm_id: Optional[str] = None,
                 message: Optional[str] = None) -> None:
        super().__init__("run %r" % command, timeout_seconds,
                         message=message or "command %r timed out after %ss" % (
                             command, timeout_seconds))
        self.details.update({"vm_id": vm_id, "command": command})
        self.command = command
        self.vm_id = vm_id


class UnavailableError(PortholeError):
    """The gateway cannot do this now (503)."""


class CommandExecutionUnavailableError(UnavailableError):
    """Commands cannot run in this VM now (its SSH is not up).

    Signature as SmolVM's: (vm_id, reason, remediation=None)."""

    def __init__(self, vm_id: str, reason: str, remediation: Optional[str] = None) -> None:
        message = "Cannot run command in VM '%s': %s" % (vm_id, reason)
        if remediation:
            message = "%s\n%s" % (message, remediation)
        super().__init__(message, {"vm_id": vm_id, "reason": reason})
        self.vm_id = vm_id
        self.reason = reason
        self.remediation = remediation


class TransportError(PortholeError):
    """The gateway could not reach the guest, or the client the gateway (502)."""


class InternalError(PortholeError):
    """The gateway failed (500)."""


class CommandBlockedError(PortholeError):
    """A command refused before it reached the guest: by an on_pre_run
    callback, or by the gateway's policy chain (deny list, hook program).

    Signature as SmolVM's: (message, vm_id=None, command=None)."""

    def __init__(self, message: str, vm_id: Optional[str] = None,
                 command: Optional[str] = None) -> None:
        super().__init__(message, {"vm_id": vm_id, "command": command})
        self.vm_id = vm_id
        self.command = command


class FeatureUnavailableError(PortholeError):
    """The gateway does not have an API this call needs (an older gateway).

    `feature` names it; `needs` says which API the SDK looked for."""

    def __init__(self, feature: str, needs: str, answer: str = "") -> None:
        msg = "the gateway does not support %s (needs %s)" % (feature, needs)
        if answer:
            msg += "; it answered: " + answer
        super().__init__(msg, {"feature": feature, "needs": needs})
        self.feature = feature
        self.needs = needs


class PlaywrightNotInstalledError(PortholeError, ImportError):
    """connect_playwright() without Playwright for Python installed."""


_BY_CODE = {
    "bad_request": ValidationError,
    "unauthorized": AuthenticationError,
    "blocked": PermissionDeniedError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "too_large": TooLargeError,
    "limit_exceeded": LimitExceededError,
    "unavailable": UnavailableError,
    "transport": TransportError,
    "internal": InternalError,
}

_BY_STATUS = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    429: LimitExceededError,
    503: UnavailableError,
    502: TransportError,
}


def from_api(status: int, code: Optional[str], message: str, what: str = "") -> PortholeError:
    """The generic error for an API answer. Callers that know more (a run,
    a lookup by id) build the specific class themselves."""
    if code == "timeout" or (code is None and status == 504):
        err: PortholeError = OperationTimeoutError(what or "request", 0, message=message)
    else:
        cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or PortholeError
        err = cls(message)
    err.code = code
    err.status = status
    err.details.setdefault("code", code)
    err.details.setdefault("status", status)
    return err
