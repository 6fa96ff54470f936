"""Log lines that say their level and logger even when the app configured no logging.

Every asgi-mtls log line goes to the ``asgi_mtls`` logger (and its children).  An app that
configures logging (``logging.basicConfig``, ``dictConfig``, its framework's setup) decides
where those lines go and how they look; nothing here changes that.  But the common first run,
``uvicorn module:app``, configures only the ``uvicorn.*`` loggers: a record from any other
logger then reaches Python's "last resort" handler, which prints the bare message, so a
refusal looked like ``client certificate rejected: ...`` with no level and no source
(issue #11).  A ``NullHandler``, the usual library advice, would hide it altogether.

:class:`FallbackHandler`, attached to the ``asgi_mtls`` logger when the package is imported,
plays the last-resort part for asgi-mtls only, with a format: it writes a record to stderr
*only when no other handler would see it* (none on the way from the record's logger up to the
root while ``propagate`` holds), at WARNING and above like the last resort, as
``WARNING:  asgi_mtls: client certificate rejected: ...`` (uvicorn's level column, then the
logger's name).  As soon as the app configures logging it stays silent, so nothing is
printed twice.
"""

from __future__ import annotations

import logging
import sys
from typing import Final

__all__ = ["LOGGER_NAME", "FallbackHandler", "get_logger", "install"]

#: The logger every asgi-mtls module logs to (or a child of it).
LOGGER_NAME: Final = "asgi_mtls"


def get_logger(child: str | None = None) -> logging.Logger:
    """The ``asgi_mtls`` logger, or its ``child`` (``"config"``: ``asgi_mtls.config``): the
    one way modules of this package name their logger."""
    return logging.getLogger(LOGGER_NAME if child is None else f"{LOGGER_NAME}.{child}")


class FallbackHandler(logging.Handler):
    """Write a record to stderr when no other handler would (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(_LevelColumn())

    def _handled_elsewhere(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            for handler in logger.handlers:
                if handler is not self and record.levelno >= handler.level:
                    return True
            if not logger.propagate:
                return False
            logger = logger.parent
        return False

    def emit(self, record: logging.LogRecord) -> None:
        if self._handled_elsewhere(record):
            return
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


class _LevelColumn(logging.Formatter):
    """``WARNING:  asgi_mtls: message`` (uvicorn's level column), tracebacks kept."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"{record.levelname + ':':<9} {record.name}: {record.message}"


def install() -> None:
    """Attach one :class:`FallbackHandler` to the ``asgi_mtls`` logger (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(handler, FallbackHandler) for handler in logger.handlers):
        logger.addHandler(FallbackHandler())
