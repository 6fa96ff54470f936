"""Fail fast: a misconfigured middleware stops the server at startup, never answers 500s.

Why this is needed (issue #11).  ``app.add_middleware(MTLSMiddleware, trust="typo.pem")``
only records the options: Starlette (and FastAPI) build the middleware stack lazily, inside
the first call of the app.  Under ``uvicorn module:app`` that first call is the lifespan scope,
and with uvicorn's default ``--lifespan auto`` an exception there is reported as "ASGI
'lifespan' protocol appears unsupported"; the server starts anyway, the stack is still
unbuilt, and every request rebuilds it, raises again and is answered 500 with a traceback.

What happens instead.  Configuration errors are one typed exception,
:class:`~asgi_mtls.errors.ConfigurationError`, whose message is one line naming the file or
option and the fix.  Built directly (``MTLSMiddleware(app, ...)``) the middleware raises it;
built that way while ``uvicorn module:app`` imports the module, it logs the line as uvicorn
logs startup failures and exits with uvicorn's startup-failure status, 3 (no traceback).
Built by Starlette's ``build_middleware_stack`` it cannot usefully raise, so it keeps the
error and becomes a :class:`MisconfiguredApp`:

- on the lifespan scope it answers ``lifespan.startup.failed`` with the line (uvicorn logs it
  and exits with status 3, whatever ``--lifespan`` says, as do Hypercorn and Starlette's
  ``TestClient``), then raises the error so that a server that ignores the message still
  sees a failure;
- where no lifespan ran (``--lifespan off``, servers without one), every HTTP request and
  WebSocket is refused with 503 ``misconfigured`` and a log line, never a 500 and never
  served without its certificate checks.
"""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import Final, NoReturn

from starlette.types import Receive, Scope, Send

from asgi_mtls import errors
from asgi_mtls.events.dispatch import default_bus
from asgi_mtls.log import get_logger
from asgi_mtls.sources import transport_peer

__all__ = [
    "MisconfiguredApp",
    "as_configuration_error",
    "built_by_starlette",
    "imported_by_uvicorn",
    "stop_uvicorn",
]

logger = get_logger("config")

#: How many frames up from the middleware's ``__init__`` Starlette's builder may be
#: (the constructor, a subclass's, a decorator's wrapper).
_MAX_FRAMES: Final = 8
#: How many frames up from the middleware's ``__init__`` uvicorn's importer may be: the
#: import machinery stands between (``importlib`` frames, the app module, packages above it).
_MAX_IMPORT_FRAMES: Final = 64


def _called_within(function: str, frames: int, filename: str = "") -> bool:
    """Whether a function named ``function`` (in a file whose path holds ``filename``) is
    among the ``frames`` callers above the public check that asks."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(frames):
        if frame is None:
            return False
        code = frame.f_code
        if code.co_name == function and filename in code.co_filename:
            return True
        frame = frame.f_back
    return False


def built_by_starlette() -> bool:
    """Whether the caller is being built by a Starlette or FastAPI app's lazy
    ``build_middleware_stack`` (directly or through a subclass's constructor), where an
    exception would turn into a 500 per request instead of a failed startup."""
    return _called_within("build_middleware_stack", _MAX_FRAMES)


def imported_by_uvicorn() -> bool:
    """Whether the caller runs while ``uvicorn module:app`` imports the app module
    (``uvicorn.importer.import_from_string``): a middleware built at import time
    (``app = MTLSMiddleware(app, ...)``) whose error would otherwise be a traceback."""
    return _called_within("import_from_string", _MAX_IMPORT_FRAMES, "uvicorn")


def stop_uvicorn(error: errors.ConfigurationError) -> NoReturn:
    """Stop ``uvicorn module:app`` while it imports the app: the one line, as uvicorn's own
    error logger writes its startup failures, and status 3, its startup-failure status (what
    a misconfigured middleware built by Starlette gives through the lifespan), instead of a
    traceback of the import (issue #11)."""
    logging.getLogger("uvicorn.error").error("asgi-mtls: %s", error)
    raise SystemExit(3)


def as_configuration_error(exc: BaseException, what: str) -> errors.ConfigurationError:
    """``exc`` as a :class:`errors.ConfigurationError` with a one-line message (``what`` says
    which object failed to build, for errors that do not name their option)."""
    if isinstance(exc, errors.ConfigurationError):
        return exc
    text = " ".join(str(exc).split()) or type(exc).__name__
    error = errors.ConfigurationError(f"{what}: {text}")
    error.__cause__ = exc
    return error


class MisconfiguredApp:
    """What a middleware built by Starlette with a :class:`errors.ConfigurationError` serves: a
    failed lifespan startup, else 503 ``misconfigured`` (see the module docstring)."""

    configuration_error: errors.ConfigurationError

    def __init__(self, error: errors.ConfigurationError) -> None:
        self.configuration_error = error
        self._reported = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = self.configuration_error
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": f"asgi-mtls: {error}"})
            raise errors.ConfigurationError(str(error)) from error
        if scope["type"] not in ("http", "websocket"):
            return
        if not self._reported:
            self._reported = True
            logger.error(
                "asgi-mtls is misconfigured and no lifespan startup stopped the server; "
                "refusing every request with 503 misconfigured: %s",
                error,
            )
        refusal = errors.CertificateRejected(errors.RejectionReason.MISCONFIGURED, str(error))
        # The middleware's listeners were never built: the log listener reports the refusal.
        default_bus().refused(scope, refusal, transport_peer(scope, trust_scope_client=False))
        await errors.send_rejection(scope, send, refusal)
