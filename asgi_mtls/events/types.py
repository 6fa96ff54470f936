"""The events: what the middleware decided, as small frozen values (issue #13).

Every listener (``MTLSMiddleware(..., listeners=[...])``) receives every event it takes; see
:mod:`asgi_mtls.events` for who emits what and when.  Events that concern a request carry its
ASGI ``scope`` (read it, never keep it: it holds the request) and the transport ``peer``
where the middleware knows it.  The trust and revocation notices come from the validator's
background work (:mod:`asgi_mtls.validation.notices`) and carry no request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asgi_mtls.errors import RejectionReason
from asgi_mtls.identity import ClientIdentity

Scope = Mapping[str, Any]


class Event:
    """Base of the request and certificate events (the validation notices have their own)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Authenticated(Event):
    """A request whose client was identified by a certificate.  Emitted for every such
    request, so only to listeners that take per-request events (``hits = True``, the
    default; the log listener does not).  ``cached``: no certificate was validated for it
    (a cache hit)."""

    scope: Scope = field(repr=False)
    identity: ClientIdentity
    cached: bool

    @property
    def source(self) -> str:
        return self.identity.source


@dataclass(frozen=True, slots=True)
class Anonymous(Event):
    """A request without a certificate that went on to the app (public routes, exempt
    paths).  Per request, like :class:`Authenticated`."""

    scope: Scope = field(repr=False)


@dataclass(frozen=True, slots=True)
class Rejected(Event):
    """A refused certificate: presented but not acceptable (``untrusted``, ``expired``,
    ``untrusted_proxy``...), or the identity hook's refusal or failure.  The request was
    answered with ``reason``'s status."""

    scope: Scope = field(repr=False)
    reason: RejectionReason
    detail: str
    peer: str | None
    source: str | None


@dataclass(frozen=True, slots=True)
class Forbidden(Event):
    """An authorization refusal (``forbidden``, or ``missing`` where a certificate is
    required): ``where`` names the route, the policy (``"policy /admin/*"``),
    ``"deny_by_default"`` or ``"require_certificate"``; ``requirement`` says what was
    required.  ``identity`` is the client (``None``: anonymous)."""

    scope: Scope = field(repr=False)
    reason: RejectionReason
    detail: str
    peer: str | None
    identity: ClientIdentity | None
    where: str
    requirement: str


@dataclass(frozen=True, slots=True)
class WouldDeny(Event):
    """Report mode (a ``dry_run`` requirement or policy, ``deny_by_default="dry_run"``):
    enforcement would have refused this request with ``reason``; it went on to the app."""

    scope: Scope = field(repr=False)
    reason: RejectionReason
    detail: str
    identity: ClientIdentity | None
    where: str
    requirement: str


@dataclass(frozen=True, slots=True)
class UntrustedHeader(Event):
    """A certificate header from a peer that is not a trusted proxy, dropped under
    ``on_untrusted_header="ignore"`` (the request went on as anonymous).  Under the default
    ``"reject"`` the request is a :class:`Rejected` with ``untrusted_proxy`` instead."""

    scope: Scope = field(repr=False)
    source: str
    peer: str | None


@dataclass(frozen=True, slots=True)
class CertificateValidated(Event):
    """A certificate met for the first time (a cache miss) was decoded, validated and
    mapped: ``identity`` when accepted, else ``reason``.  ``seconds``: how long that took
    (the identity hook not included)."""

    source: str
    identity: ClientIdentity | None
    reason: RejectionReason | None
    seconds: float


@dataclass(frozen=True, slots=True)
class CertificateExpiring(Event):
    """An accepted certificate within the expiry warning window of its notAfter; once per
    certificate (``remaining``: the time left when it was seen)."""

    identity: ClientIdentity
    remaining: dt.timedelta


@dataclass(frozen=True, slots=True)
class IdentityHookFailed(Event):
    """The identity hook raised or timed out (``timed_out``); the request is refused
    (``identity_hook_error`` / ``identity_hook_timeout``, a :class:`Rejected` follows)."""

    identity: ClientIdentity
    error: BaseException | None
    timed_out: bool


@dataclass(frozen=True, slots=True)
class ConfigurationWarning(Event):
    """A configuration that works but probably not as meant (said once, at construction)."""

    option: str
    message: str


@dataclass(frozen=True, slots=True)
class Configured(Event):
    """The middleware was built (once): what a metrics listener reads when scraped.
    ``cache_entries`` and ``cache_bytes`` give the verification cache's size now."""

    cache_entries: Callable[[], int] = field(repr=False)
    cache_bytes: Callable[[], int] = field(repr=False)
