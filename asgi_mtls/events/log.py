"""The log listener: the default listener, and the only place asgi-mtls writes request lines.

One logger per concern, each a child of ``asgi_mtls`` (so ``logging.getLogger("asgi_mtls")``
still configures them all), one level per event, and the event's fields as ``extra=``
attributes of the record, which JSON log formatters emit as fields:

==========================  =================  ========  =====================================
event                       logger             level     line
==========================  =================  ========  =====================================
Rejected, Forbidden         ``asgi_mtls.auth``  WARNING  ``client certificate rejected: ...``
WouldDeny                   ``asgi_mtls.auth``  WARNING  ``dry run: would refuse: ...``
UntrustedHeader             ``asgi_mtls.auth``  INFO     ``untrusted certificate header ...``
CertificateValidated        ``asgi_mtls.auth``  DEBUG    ``client certificate accepted: ...``
                                                         (``server-verified name accepted:
                                                         ...`` for one, issue #12)
CertificateExpiring         ``asgi_mtls.expiry``  WARNING  ``client certificate expires ...``
IdentityHookFailed          ``asgi_mtls.hooks``  ERROR   with the traceback
ConfigurationWarning        ``asgi_mtls.config``  WARNING  the message
==========================  =================  ========  =====================================

The refusal line keeps the format ``docs/errors.md`` documents; values that come from the request
are ``repr``-escaped so that a path or a certificate field cannot forge a line.  The listener
takes no per-request events (``hits = False``): an accepted request costs it nothing.  The
trust and revocation notices are not logged here: the validator logs them where they happen,
with or without a middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from asgi_mtls.diagnostics import hint_for_refusal
from asgi_mtls.events import types as kinds
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.validation.notices import ValidationNotice

__all__ = ["LOGGERS", "LogListener"]

#: The logger of each concern.
LOGGERS: Final = {
    "auth": "asgi_mtls.auth",
    "expiry": "asgi_mtls.expiry",
    "hooks": "asgi_mtls.hooks",
    "config": "asgi_mtls.config",
}

_REFUSAL: Final = (
    "client certificate rejected: reason=%s status=%d path=%r client=%r peer=%s detail=%r"
)


def _client(scope: Mapping[str, Any]) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


class LogListener:
    """Write each event as one log line (see the module docstring)."""

    #: Per-request events of cached hits are not logged (an access log's job, not ours).
    hits = False

    def __init__(self) -> None:
        self.auth = logging.getLogger(LOGGERS["auth"])
        self.expiry = logging.getLogger(LOGGERS["expiry"])
        self.hooks = logging.getLogger(LOGGERS["hooks"])
        self.config = logging.getLogger(LOGGERS["config"])

    def __repr__(self) -> str:
        return "LogListener()"

    def __call__(self, event: kinds.Event | ValidationNotice) -> None:
        if isinstance(event, kinds.Rejected | kinds.Forbidden):
            self._refusal(event)
        elif isinstance(event, kinds.WouldDeny):
            self.auth.warning(
                "dry run: would refuse: reason=%s status=%d path=%r where=%s detail=%r",
                event.reason.value,
                event.reason.status_code,
                event.scope.get("path"),
                event.where,
                event.detail,
                extra={
                    "event": "would_deny",
                    "reason": event.reason.value,
                    "status": event.reason.status_code,
                    "path": event.scope.get("path"),
                    "where": event.where,
                    "requirement": event.requirement,
                    "principal": event.identity.principal if event.identity else None,
                    "detail": event.detail,
                },
            )
        elif isinstance(event, kinds.UntrustedHeader):
            self.auth.info(
                "untrusted certificate header ignored: source=%s path=%r peer=%s",
                event.source,
                event.scope.get("path"),
                event.peer or "unknown",
                extra={
                    "event": "untrusted_header",
                    "source": event.source,
                    "path": event.scope.get("path"),
                    "peer": event.peer,
                },
            )
        elif isinstance(event, kinds.CertificateValidated):
            if event.identity is not None and self.auth.isEnabledFor(logging.DEBUG):
                identity = event.identity
                if identity.certificate is None:
                    self._server_verified(identity, event.source)
                    return
                self.auth.debug(
                    "client certificate accepted: principal=%r source=%s fingerprint=%s "
                    "validation_ms=%.2f",
                    identity.principal,
                    event.source,
                    identity.fingerprint_sha256,
                    event.seconds * 1000,
                    extra={
                        "event": "validated",
                        "principal": identity.principal,
                        "source": event.source,
                        "fingerprint": identity.fingerprint_sha256,
                        "seconds": event.seconds,
                    },
                )
        elif isinstance(event, kinds.CertificateExpiring):
            identity = event.identity
            self.expiry.warning(
                "client certificate expires in %s: principal=%r notAfter=%s fingerprint=%s",
                _days(event.remaining.total_seconds()),
                identity.principal,
                identity.not_after.isoformat(),
                identity.fingerprint_sha256,
                extra={
                    "event": "expiring",
                    "principal": identity.principal,
                    "not_after": identity.not_after.isoformat(),
                    "remaining_seconds": event.remaining.total_seconds(),
                    "fingerprint": identity.fingerprint_sha256,
                },
            )
        elif isinstance(event, kinds.IdentityHookFailed):
            self.hooks.error(
                "identity hook %s for principal %r; refusing the request",
                "timed out" if event.timed_out else "failed",
                event.identity.principal,
                exc_info=event.error if not event.timed_out else None,
                extra={
                    "event": "identity_hook_failed",
                    "principal": event.identity.principal,
                    "timed_out": event.timed_out,
                },
            )
        elif isinstance(event, kinds.ConfigurationWarning):
            self.config.warning(
                "%s", event.message, extra={"event": "configuration", "option": event.option}
            )

    def _server_verified(self, identity: ClientIdentity, source: str) -> None:
        """A server-verified name (issue #12) said as what it is: no certificate, no
        fingerprint, nothing asgi-mtls validated."""
        self.auth.debug(
            "server-verified name accepted (no certificate; not validated by asgi-mtls): "
            "principal=%r source=%s subject=%r verified_by=server",
            identity.principal,
            source,
            identity.subject,
            extra={
                "event": "validated",
                "principal": identity.principal,
                "source": source,
                "subject": identity.subject,
                "verified_by": "server",
            },
        )

    def _refusal(self, event: kinds.Rejected | kinds.Forbidden) -> None:
        scope = event.scope
        path = scope.get("path")
        client = _client(scope)
        fields: dict[str, object] = {
            "event": "rejected" if isinstance(event, kinds.Rejected) else "forbidden",
            "reason": event.reason.value,
            "status": event.reason.status_code,
            "path": path,
            "client": client,
            "peer": event.peer,
            "detail": event.detail,
        }
        if isinstance(event, kinds.Rejected):
            fields["source"] = event.source
        else:
            fields["where"] = event.where
            fields["requirement"] = event.requirement
            fields["principal"] = event.identity.principal if event.identity else None
        self.auth.warning(
            _REFUSAL,
            event.reason.value,
            event.reason.status_code,
            path,
            client,
            event.peer if event.peer is not None else "unknown",
            event.detail,
            extra=fields,
        )
        hint_for_refusal(scope, event.reason.value, event.peer)


def _days(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{max(seconds, 0) / 60:.0f} minutes"
