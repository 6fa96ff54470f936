"""Events: what the middleware decides, for logs, metrics, traces and audits (issue #13).

``MTLSMiddleware(..., listeners=[...])`` hands every event to every listener (a callable of
one argument).  The default, ``listeners=None``, is ``[LogListener()]``: the log lines of
:mod:`asgi_mtls.events.log`.  ``listeners=[]`` turns events off entirely (no log line for a
refusal either).  Add :class:`~asgi_mtls.prometheus.PrometheusListener` or
:class:`~asgi_mtls.opentelemetry.OpenTelemetryListener` beside the log listener.

Who emits what:

- per request (only to listeners with ``hits``; none are built when no listener takes them):
  :class:`Authenticated` (``cached`` on a cache hit), :class:`Anonymous`;
- per refusal: :class:`Rejected` (the certificate), :class:`Forbidden` (authorization);
- report mode: :class:`WouldDeny`;
- per certificate met for the first time (a cache miss): :class:`CertificateValidated`,
  :class:`CertificateExpiring` (once per certificate within the expiry window);
- :class:`UntrustedHeader` (a header dropped under ``on_untrusted_header="ignore"``),
  :class:`IdentityHookFailed`, :class:`ConfigurationWarning`, :class:`Configured` (once, when
  the middleware is built: what a metrics listener reads on scrape);
- from the validator's background work: :class:`TrustReloaded`,
  :class:`TrustReloadFailed`, :class:`RevocationUpdated`, :class:`RevocationFetchFailed`.

A listener never changes a decision: one that raises is logged on ``asgi_mtls.listeners``
and the request goes on as decided.
"""

from __future__ import annotations

from asgi_mtls.events.dispatch import EventBus, Listener, bus_for
from asgi_mtls.events.log import LogListener
from asgi_mtls.events.types import (
    Anonymous,
    Authenticated,
    CertificateExpiring,
    CertificateValidated,
    ConfigurationWarning,
    Configured,
    Event,
    Forbidden,
    IdentityHookFailed,
    Rejected,
    UntrustedHeader,
    WouldDeny,
)
from asgi_mtls.validation.notices import (
    RevocationFetchFailed,
    RevocationUpdated,
    TrustReloaded,
    TrustReloadFailed,
    ValidationNotice,
)

__all__ = [
    "Anonymous",
    "Authenticated",
    "CertificateExpiring",
    "CertificateValidated",
    "ConfigurationWarning",
    "Configured",
    "Event",
    "EventBus",
    "Forbidden",
    "IdentityHookFailed",
    "Listener",
    "LogListener",
    "Rejected",
    "RevocationFetchFailed",
    "RevocationUpdated",
    "TrustReloadFailed",
    "TrustReloaded",
    "UntrustedHeader",
    "ValidationNotice",
    "WouldDeny",
    "bus_for",
]
