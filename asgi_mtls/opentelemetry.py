"""OpenTelemetry: the client certificate on the request's span (extra ``opentelemetry``).

::

    from asgi_mtls.events import LogListener
    from asgi_mtls.opentelemetry import OpenTelemetryListener

    app.add_middleware(
        MTLSMiddleware, trust="clients-ca.pem",
        listeners=[LogListener(), OpenTelemetryListener()],
    )

The listener writes on the span that is current while the middleware runs (the server span
of OpenTelemetry's ASGI instrumentation, or any span the app's own middleware started
outside this one); it starts none itself and needs only ``opentelemetry-api``.  On an
authenticated request it sets the semantic-convention attributes (``tls.client.*``, ``user.*``):

=============================  ===========================================================
attribute                      value
=============================  ===========================================================
``tls.client.subject``         the certificate's subject (RFC 4514)
``tls.client.issuer``          its issuer (RFC 4514)
``tls.client.hash.sha256``     SHA-256 of the DER certificate, uppercase hex
``tls.client.not_before``      notBefore, ISO 8601 UTC (``2026-01-31T00:00:00.000Z``)
``tls.client.not_after``       notAfter, same format
``user.id``                    the principal
``user.roles``                 the roles the role map granted (sorted)
``asgi_mtls.verified_by``      ``certificate``, or ``server`` for a server-verified name
=============================  ===========================================================

A server-verified name (issue #12) has a subject and no certificate: its span gets the
subject, ``user.*`` and ``asgi_mtls.verified_by = "server"``, and no issuer, hash or validity.

built once per identity and reused by every request of the certificate.  A refusal adds a
span event ``asgi_mtls.refusal`` with ``error.type`` set to the reason code (and
``http.response.status_code``); a dry run's would-be refusal an event
``asgi_mtls.would_deny``.  Nothing is written on a span that is not recording.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from opentelemetry import trace

from asgi_mtls.events.types import Authenticated, Event, Forbidden, Rejected, WouldDeny
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.validation.notices import ValidationNotice

__all__ = ["OpenTelemetryListener", "span_attributes"]


def _timestamp(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as the convention's examples write it."""
    utc = moment.astimezone(dt.UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def span_attributes(identity: ClientIdentity) -> dict[str, Any]:
    """The span attributes of ``identity`` (see the module docstring)."""
    attributes: dict[str, Any] = {"tls.client.subject": identity.subject}
    if identity.certificate is not None:
        attributes["tls.client.issuer"] = identity.issuer
        attributes["tls.client.hash.sha256"] = identity.fingerprint_sha256.upper()
        attributes["tls.client.not_before"] = _timestamp(identity.not_before)
        attributes["tls.client.not_after"] = _timestamp(identity.not_after)
    attributes["user.id"] = identity.principal
    attributes["user.roles"] = sorted(identity.roles)
    attributes["asgi_mtls.verified_by"] = identity.verified_by
    return attributes


class OpenTelemetryListener:
    """Writes the client's certificate and refusals on the current span (module docstring)."""

    #: Takes the per-request events: every authenticated request's span gets the attributes.
    hits = True

    def __repr__(self) -> str:
        return "OpenTelemetryListener()"

    def __call__(self, event: Event | ValidationNotice) -> None:
        kind = type(event)
        if kind is Authenticated:
            assert isinstance(event, Authenticated)
            span = trace.get_current_span()
            if span.is_recording():
                identity = event.identity
                span.set_attributes(identity.memo("opentelemetry", span_attributes, identity))
        elif kind is Rejected or kind is Forbidden:
            assert isinstance(event, Rejected | Forbidden)
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(
                    "asgi_mtls.refusal",
                    {
                        "error.type": event.reason.value,
                        "http.response.status_code": event.reason.status_code,
                    },
                )
        elif kind is WouldDeny:
            assert isinstance(event, WouldDeny)
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(
                    "asgi_mtls.would_deny",
                    {"error.type": event.reason.value, "asgi_mtls.where": event.where},
                )
