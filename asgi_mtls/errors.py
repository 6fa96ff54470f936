"""Rejection reasons: one enum of stable codes, the exception that carries them, and the
answers a client sees.

Codes are part of the public contract: clients, dashboards and alerts match on them, so a
code is never renamed.  The client sees the code and a fixed one-line message; the detail
(which may name certificate fields) goes to the log only.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from starlette.exceptions import HTTPException

__all__ = [
    "WS_POLICY_VIOLATION",
    "CertificateRejected",
    "ConfigurationError",
    "Denied",
    "Rejection",
    "RejectionReason",
    "malformed",
    "send_rejection",
]

#: WebSocket close code for a connection denied by policy (RFC 6455, section 7.4.1).
WS_POLICY_VIOLATION: Final = 1008


class RejectionReason(enum.StrEnum):
    """Why a request was refused.  The value is the stable code sent to the client."""

    #: No client certificate, on a route (or middleware) that requires one.
    MISSING = "missing"
    #: The certificate data could not be decoded (bad PEM/DER/URL-encoding, empty, truncated).
    MALFORMED = "malformed"
    #: The certificate value is larger than the configured limit.
    TOO_LARGE = "too_large"
    #: No path from the certificate to a configured trust root.
    UNTRUSTED = "untrusted"
    #: The certificate's notAfter is in the past.
    EXPIRED = "expired"
    #: The certificate's notBefore is in the future.
    NOT_YET_VALID = "not_yet_valid"
    #: Not a client certificate: no clientAuth EKU, or a CA certificate presented as a client.
    WRONG_USAGE = "wrong_usage"
    #: The proxy that terminated TLS reported that it failed to verify the certificate.
    PROXY_VERIFY_FAILED = "proxy_verify_failed"
    #: A certificate header arrived from a peer that is not a configured trusted proxy, or
    #: the server did not report the real TCP peer.
    UNTRUSTED_PROXY = "untrusted_proxy"
    #: The same certificate header appears more than once.
    DUPLICATE_HEADER = "duplicate_header"
    #: More than one certificate source presented a certificate (e.g. TLS and a header).
    CONFLICTING_SOURCES = "conflicting_sources"
    #: A valid certificate whose identity is not allowed on this route.
    FORBIDDEN = "forbidden"
    #: The certificate is valid but no principal name could be derived from it.
    NO_PRINCIPAL = "no_principal"
    #: A key in the chain is outside the key policy (short or odd-sized RSA, a small RSA
    #: exponent, a curve other than P-256/P-384/P-521, DSA...): asgi_mtls.validation.policy.
    WEAK_KEY = "weak_key"
    #: The validator failed unexpectedly; rejected rather than passed (fail closed).
    VALIDATION_ERROR = "validation_error"
    #: A certificate in the chain is listed as revoked by a CRL or an OCSP responder.
    REVOKED = "revoked"
    #: The revocation status could not be determined (no fresh CRL or OCSP answer) under a
    #: hard-fail revocation policy.
    REVOCATION_UNKNOWN = "revocation_unknown"
    #: The chain is valid but the leaf was not issued by one of the configured allowed issuers.
    ISSUER_NOT_ALLOWED = "issuer_not_allowed"
    #: Pins are configured and no certificate or public key in the chain matches one.
    NOT_PINNED = "not_pinned"
    #: A certificate in the chain is signed with an algorithm that is not accepted (MD5,
    #: SHA-1, or one outside the configured ``signature_algorithms``).
    WEAK_SIGNATURE = "weak_signature"
    #: A subjectAltName or subject name is not well formed for its kind (a DNS name that is
    #: not a host name, a URI with characters no URI may hold, non-ASCII in an IA5String,
    #: invisible characters in a subject attribute).  The whole certificate is refused.
    INVALID_NAME = "invalid_name"
    #: A certificate source failed unexpectedly while reading the request (fail closed).
    SOURCE_ERROR = "source_error"
    #: The middleware could not be configured (a :class:`ConfigurationError`) and the server
    #: ran no lifespan to stop it at startup: every request is refused until it is fixed.
    MISCONFIGURED = "misconfigured"
    #: The app's identity hook (``on_identity``) returned ``None``: a valid certificate whose
    #: client the app refuses (a disabled account, an unknown tenant).
    IDENTITY_REFUSED = "identity_refused"
    #: The identity hook raised, or returned something other than an identity of the same
    #: certificate (fail closed; not cached, the next request asks again).
    IDENTITY_HOOK_ERROR = "identity_hook_error"
    #: The identity hook did not answer within its timeout (fail closed; not cached).
    IDENTITY_HOOK_TIMEOUT = "identity_hook_timeout"
    #: RFC 8705: binding is required and the access token has no ``cnf`` ``x5t#S256``
    #: confirmation.  Answered as OAuth ``invalid_token`` (RFC 6750 section 3.1).
    TOKEN_NOT_BOUND = "token_not_bound"  # noqa: S105 - a reason code, not a secret
    #: RFC 8705: the token's ``cnf`` ``x5t#S256`` is not the thumbprint of the client
    #: certificate of this request (or there is none).  Answered as ``invalid_token``.
    TOKEN_BINDING_MISMATCH = "token_binding_mismatch"  # noqa: S105 - a reason code

    @property
    def status_code(self) -> int:
        return _STATUS[self]

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_STATUS: Final[dict[RejectionReason, int]] = {
    RejectionReason.MISSING: 401,
    RejectionReason.MALFORMED: 400,
    RejectionReason.TOO_LARGE: 400,
    RejectionReason.UNTRUSTED: 401,
    RejectionReason.EXPIRED: 401,
    RejectionReason.NOT_YET_VALID: 401,
    RejectionReason.WRONG_USAGE: 401,
    RejectionReason.PROXY_VERIFY_FAILED: 401,
    RejectionReason.UNTRUSTED_PROXY: 400,
    RejectionReason.DUPLICATE_HEADER: 400,
    RejectionReason.CONFLICTING_SOURCES: 400,
    RejectionReason.FORBIDDEN: 403,
    RejectionReason.NO_PRINCIPAL: 401,
    RejectionReason.WEAK_KEY: 401,
    RejectionReason.VALIDATION_ERROR: 401,
    RejectionReason.REVOKED: 401,
    RejectionReason.REVOCATION_UNKNOWN: 401,
    RejectionReason.ISSUER_NOT_ALLOWED: 401,
    RejectionReason.NOT_PINNED: 401,
    RejectionReason.WEAK_SIGNATURE: 401,
    RejectionReason.INVALID_NAME: 401,
    RejectionReason.SOURCE_ERROR: 400,
    RejectionReason.MISCONFIGURED: 503,
    RejectionReason.IDENTITY_REFUSED: 403,
    RejectionReason.IDENTITY_HOOK_ERROR: 503,
    RejectionReason.IDENTITY_HOOK_TIMEOUT: 503,
    RejectionReason.TOKEN_NOT_BOUND: 401,
    RejectionReason.TOKEN_BINDING_MISMATCH: 401,
}

_MESSAGES: Final[dict[RejectionReason, str]] = {
    RejectionReason.MISSING: "a client certificate is required",
    RejectionReason.MALFORMED: "the client certificate could not be decoded",
    RejectionReason.TOO_LARGE: "the client certificate data is too large",
    RejectionReason.UNTRUSTED: "the client certificate is not issued by a trusted authority",
    RejectionReason.EXPIRED: "the client certificate has expired",
    RejectionReason.NOT_YET_VALID: "the client certificate is not valid yet",
    RejectionReason.WRONG_USAGE: "the certificate is not a TLS client certificate",
    RejectionReason.PROXY_VERIFY_FAILED: "the TLS proxy failed to verify the client certificate",
    RejectionReason.UNTRUSTED_PROXY: "client certificate headers are not accepted from this peer",
    RejectionReason.DUPLICATE_HEADER: "the client certificate header appears more than once",
    RejectionReason.CONFLICTING_SOURCES: "more than one client certificate was presented",
    RejectionReason.FORBIDDEN: "this client is not allowed to call this resource",
    RejectionReason.NO_PRINCIPAL: "no principal name could be derived from the certificate",
    RejectionReason.WEAK_KEY: "the client certificate chain uses a key that is too weak",
    RejectionReason.VALIDATION_ERROR: "the client certificate could not be verified",
    RejectionReason.REVOKED: "the client certificate has been revoked",
    RejectionReason.REVOCATION_UNKNOWN: "the revocation status of the client certificate is "
    "unknown",
    RejectionReason.ISSUER_NOT_ALLOWED: "the client certificate is not issued by an allowed "
    "authority",
    RejectionReason.NOT_PINNED: "the client certificate does not match a pinned certificate or key",
    RejectionReason.WEAK_SIGNATURE: "the client certificate chain uses a signature algorithm that "
    "is not accepted",
    RejectionReason.INVALID_NAME: "the client certificate carries a malformed name",
    RejectionReason.SOURCE_ERROR: "the client certificate could not be read from the request",
    RejectionReason.MISCONFIGURED: "client certificate checking is not configured correctly on "
    "this server",
    RejectionReason.IDENTITY_REFUSED: "this client is not allowed to use this service",
    RejectionReason.IDENTITY_HOOK_ERROR: "the client could not be looked up; try again later",
    RejectionReason.IDENTITY_HOOK_TIMEOUT: "the client could not be looked up in time; try again "
    "later",
    RejectionReason.TOKEN_NOT_BOUND: "the access token is not bound to a client certificate",
    RejectionReason.TOKEN_BINDING_MISMATCH: "the access token is not bound to this client "
    "certificate",
}

#: RFC 6750 section 3: the ``WWW-Authenticate`` challenge of the refusals that concern an
#: OAuth access token (RFC 8705 certificate binding): ``invalid_token``, with a fixed
#: description (only characters RFC 6750 allows in ``error_description``).
_CHALLENGES: Final[dict[RejectionReason, str]] = {
    reason: f'Bearer error="invalid_token", error_description="{_MESSAGES[reason]}"'
    for reason in (RejectionReason.TOKEN_NOT_BOUND, RejectionReason.TOKEN_BINDING_MISMATCH)
}


class ConfigurationError(ValueError):
    """A configuration that cannot work: a missing or unreadable file, a trust file without a
    CA certificate, a bad role file or policy, contradictory options.

    Its message is one line that names the file or option and says how to fix it, because it
    is what an operator reads when the server refuses to start (issue #11).  Raised when the
    object is built, never on a request: ``MTLSMiddleware`` built inside Starlette's lazy
    middleware stack turns it into a failed lifespan startup (see
    :mod:`asgi_mtls.startup`).
    """


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal as a value: what a cache may keep (a :class:`CertificateRejected` carries a
    traceback, and with it the request that raised it; issue #8)."""

    reason: RejectionReason
    detail: str = ""
    #: The certificate source that presented what was refused, when known (events, metrics).
    source: str | None = None

    def exception(self) -> CertificateRejected:
        """A fresh exception for this refusal (never the same object twice)."""
        return CertificateRejected(self.reason, self.detail, source=self.source)


class CertificateRejected(HTTPException):
    """Raised by any stage that refuses a certificate; carries a :class:`RejectionReason`.

    ``log_detail`` is for logs and never sent to the client.  It is a Starlette
    ``HTTPException`` whose ``detail`` is the fixed client message, so an app's own exception
    handling turns it into a 4xx even where the middleware cannot answer it itself.
    """

    def __init__(
        self, reason: RejectionReason, log_detail: str = "", *, source: str | None = None
    ) -> None:
        headers = {"cache-control": "no-store"}
        challenge = _CHALLENGES.get(reason)
        if challenge is not None:
            headers["www-authenticate"] = challenge
        super().__init__(reason.status_code, reason.message, headers)
        self.reason = reason
        self.log_detail = log_detail
        #: The certificate source involved, when known (``"tls"``, ``"nginx"``...).
        self.source = source

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.log_detail}" if self.log_detail else self.reason.value

    @property
    def rejection(self) -> Rejection:
        """This refusal as a value (reason, detail, source), safe to keep."""
        return Rejection(self.reason, self.log_detail, self.source)

    def __repr__(self) -> str:
        return f"CertificateRejected({self.reason.value!r}, {self.log_detail!r})"

    def json_body(self) -> bytes:
        """The response body: ``{"error": "client_certificate", "reason": ..., "message": ...}``
        (``"error": "invalid_token"`` for the token binding codes, as RFC 6750 names them)."""
        return json.dumps(
            {
                "error": "invalid_token" if self.reason in _CHALLENGES else "client_certificate",
                "reason": self.reason.value,
                "message": self.reason.message,
            },
            separators=(",", ":"),
        ).encode()


class Denied(CertificateRejected):
    """An authorization refusal (``missing`` or ``forbidden``): a requirement, a path policy,
    ``require_certificate`` or ``deny_by_default`` said no.  ``where`` says which
    (``"route"``, ``"policy /admin/*"``, ``"deny_by_default"``, ``"require_certificate"``),
    ``requirement`` what was required and ``identity`` whom it refused (``None``: anonymous),
    for events and metrics (issue #13); the client sees the same answer as for any other
    refusal."""

    def __init__(
        self,
        reason: RejectionReason,
        log_detail: str = "",
        *,
        where: str,
        requirement: str,
        identity: object | None = None,
    ) -> None:
        super().__init__(reason, log_detail)
        self.where = where
        self.requirement = requirement
        #: The ``ClientIdentity`` refused (typed ``object`` here: this module is below the
        #: identity stage, which raises its exceptions).
        self.identity = identity


def malformed(detail: str) -> CertificateRejected:
    """A ``malformed`` refusal: what every decoder raises for data it cannot read."""
    return CertificateRejected(RejectionReason.MALFORMED, detail)


async def send_rejection(
    scope: Mapping[str, Any],
    send: Callable[[dict[str, Any]], Awaitable[None]],
    exc: CertificateRejected,
) -> None:
    """Answer ``scope`` with the rejection: a JSON error for HTTP; for a WebSocket that has not
    been accepted, the same HTTP response where the server supports the
    ``websocket.http.response`` extension, else a close with code 1008 (policy violation)."""
    body = exc.json_body()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.encode(), value.encode("latin-1")) for name, value in (exc.headers or {}).items()),
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    extensions = scope.get("extensions") or {}
    if "websocket.http.response" in extensions:
        await send(
            {"type": "websocket.http.response.start", "status": exc.status_code, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send(
            {"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": exc.reason.value}
        )
