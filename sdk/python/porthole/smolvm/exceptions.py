"""SmolVM's exception names, as the SDK's own classes: code that catches
smolvm.exceptions.X catches the same errors here. SmolVMError is
porthole.PortholeError itself, so it catches everything the SDK raises."""

from ..errors import (BrowserSessionNotFoundError, CommandBlockedError,
                      CommandExecutionUnavailableError, CommandTimeoutError, ConflictError,
                      FeatureUnavailableError, GatewayUnavailableError, OperationTimeoutError,
                      PortholeError, SandboxExistsError, SandboxNotFoundError, TransportError,
                      UnsupportedOptionError, ValidationError)

SmolVMError = PortholeError
VMNotFoundError = SandboxNotFoundError
VMAlreadyExistsError = SandboxExistsError
NetworkError = TransportError
# SmolVM raises HostError when its host checks fail; here the host is the
# gateway's, and not reaching it is the closest failure.
HostError = GatewayUnavailableError


class ImageError(PortholeError):
    """A guest image problem (unknown image name, failed build)."""


class BrowserSessionAlreadyExistsError(ConflictError):
    def __init__(self, session_id: str) -> None:
        super().__init__("Browser session '%s' already exists" % session_id,
                         {"session_id": session_id})
        self.session_id = session_id


__all__ = [
    "SmolVMError", "ValidationError", "VMNotFoundError", "VMAlreadyExistsError",
    "BrowserSessionNotFoundError", "BrowserSessionAlreadyExistsError", "NetworkError",
    "HostError", "ImageError", "OperationTimeoutError", "CommandExecutionUnavailableError",
    "CommandBlockedError", "CommandTimeoutError", "FeatureUnavailableError",
    "UnsupportedOptionError",
]
