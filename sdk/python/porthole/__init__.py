"""Porthole's Python SDK: sandboxes and browser sessions on a Porthole
gateway, standard library only.

    from porthole import Sandbox, Callback, CommandBlockedError

    class Guard(Callback):
        def on_pre_run(self, ctx):
            if "rm -rf /" in ctx.command:
                raise CommandBlockedError("no", vm_id=ctx.vm_id, command=ctx.command)

    with Sandbox(callbacks=[Guard()]) as sb:
        print(sb.run("uname -r").output)

SmolVM code runs through porthole.smolvm; agent tool definitions are in
porthole.tools.
"""

from .aio import AsyncClient, AsyncSandbox
from .browser import BrowserSession, BrowserSessionConfig, BrowserViewport
from .callbacks import Callback, CommandResult, FileContext, LifecycleContext, RunContext
from .client import Client
from .errors import (AuthenticationError, BrowserSessionNotFoundError, CommandBlockedError,
                     CommandExecutionUnavailableError, CommandTimeoutError, ConflictError,
                     FeatureUnavailableError, GatewayUnavailableError, InternalError,
                     LimitExceededError, NotFoundError, OperationTimeoutError,
                     PermissionDeniedError, PlaywrightNotInstalledError, PortholeError,
                     SandboxExistsError, SandboxNotFoundError, TooLargeError, TransportError,
                     UnavailableError, UnsupportedOptionError, ValidationError)
from .sandbox import Sandbox

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "AsyncSandbox", "BrowserSession", "BrowserSessionConfig", "BrowserViewport",
    "Callback", "CommandResult", "FileContext", "LifecycleContext", "RunContext", "Client",
    "Sandbox", "AuthenticationError", "BrowserSessionNotFoundError", "CommandBlockedError",
    "CommandExecutionUnavailableError", "CommandTimeoutError", "ConflictError",
    "FeatureUnavailableError", "GatewayUnavailableError", "InternalError",
    "LimitExceededError", "NotFoundError", "OperationTimeoutError", "PermissionDeniedError",
    "PlaywrightNotInstalledError", "PortholeError", "SandboxExistsError",
    "SandboxNotFoundError", "TooLargeError", "TransportError", "UnavailableError",
    "UnsupportedOptionError", "ValidationError",
]
