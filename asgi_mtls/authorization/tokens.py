"""Certificate-bound access tokens (RFC 8705): is this token bound to this client certificate?

An OAuth authorization server that issues mutual-TLS certificate-bound tokens puts the
thumbprint of the client's certificate in the token (or its introspection answer) as the
confirmation claim ``"cnf": {"x5t#S256": "<base64url SHA-256 of the DER certificate>"}``
(RFC 8705 section 3.1).  The resource server must then refuse the token on any connection
whose client certificate has another thumbprint (section 3): a stolen token is useless
without the private key.  FAPI and open-banking profiles require it.

This module checks the binding and nothing else.  Verifying the token (signature, issuer,
audience, expiry) is the app's job, with its own JWT library or introspection call; what it
passes here are the claims it has already verified::

    claims = verify_access_token(request)          # the app's own code
    check_token_binding(request, claims)            # raises on a token of another client

or, with FastAPI, :func:`asgi_mtls.fastapi.certificate_bound` around the app's own claims
dependency.  A refusal is 401 with the OAuth error ``invalid_token`` and the
``WWW-Authenticate: Bearer error="invalid_token", ...`` header RFC 6750 section 3 describes:
``token_not_bound`` when binding is required and the token has no ``cnf.x5t#S256``,
``token_binding_mismatch`` when it names another certificate or the request presented none.
The thumbprints are compared in constant time (:func:`hmac.compare_digest`).

A server-verified name (``ClientIdentity.verified_by == "server"``, issue #12) has no
certificate, so no token can be bound to it: a token with a confirmation is
``token_binding_mismatch`` there, whatever thumbprint it carries (an empty one included).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import HTTPConnection

from asgi_mtls.errors import Denied, RejectionReason
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.inject import get_client_identity

__all__ = ["CONFIRMATION_CLAIM", "THUMBPRINT_MEMBER", "check_token_binding", "token_thumbprint"]

#: The confirmation claim (RFC 7800) and its certificate thumbprint member (RFC 8705 3.1).
CONFIRMATION_CLAIM: Final = "cnf"
THUMBPRINT_MEMBER: Final = "x5t#S256"
#: Where a binding refusal is said to come from (events, metrics).
WHERE: Final = "token binding"
_REQUIREMENT: Final = "an access token bound to the client certificate (RFC 8705)"


def token_thumbprint(claims: Mapping[str, Any]) -> str | None:
    """The ``cnf`` ``x5t#S256`` of verified token ``claims``; ``None`` when the token has no
    confirmation claim at all.  A confirmation claim of the wrong shape (not an object, a
    thumbprint that is not a string) is ``""``: present, and matching nothing."""
    confirmation = claims.get(CONFIRMATION_CLAIM)
    if confirmation is None:
        return None
    if not isinstance(confirmation, Mapping):
        return ""
    thumbprint = confirmation.get(THUMBPRINT_MEMBER)
    if thumbprint is None:
        return None
    return thumbprint if isinstance(thumbprint, str) else ""


def _matches(expected: str, presented: str) -> bool:
    """Constant-time comparison of two thumbprints; empty or non-ASCII text matches nothing."""
    if not expected or not presented:
        return False
    try:
        return hmac.compare_digest(expected.encode("ascii"), presented.encode("ascii"))
    except UnicodeEncodeError:
        return False


def check_token_binding(
    connection: HTTPConnection | Mapping[str, Any] | ClientIdentity | None,
    claims: Mapping[str, Any],
    *,
    required: bool = True,
) -> None:
    """Refuse ``claims`` (an access token's, already verified by the app) unless the token
    is bound to the client certificate of ``connection`` (a Request, WebSocket, ASGI scope,
    or the :class:`ClientIdentity` itself; ``None``: no certificate).

    ``required=False`` lets a token without a ``cnf.x5t#S256`` through (a deployment where
    only some clients have bound tokens); a token that *has* one is always checked.

    Raises :class:`~asgi_mtls.errors.Denied` (a ``CertificateRejected``): 401
    ``token_not_bound`` or ``token_binding_mismatch``, answered as OAuth ``invalid_token``
    with RFC 6750's ``WWW-Authenticate`` header.
    """
    if isinstance(connection, ClientIdentity) or connection is None:
        identity = connection
    else:
        identity = get_client_identity(connection)
    thumbprint = token_thumbprint(claims)
    if thumbprint is None:
        if not required:
            return
        raise Denied(
            RejectionReason.TOKEN_NOT_BOUND,
            "the access token has no cnf x5t#S256 confirmation",
            where=WHERE,
            requirement=_REQUIREMENT,
            identity=identity,
        )
    if identity is None:
        raise Denied(
            RejectionReason.TOKEN_BINDING_MISMATCH,
            "a certificate-bound access token on a request without a client certificate",
            where=WHERE,
            requirement=_REQUIREMENT,
        )
    if identity.certificate is None:
        raise Denied(
            RejectionReason.TOKEN_BINDING_MISMATCH,
            "a certificate-bound access token on a server-verified name (issue #12): there is "
            "no certificate to bind it to",
            where=WHERE,
            requirement=_REQUIREMENT,
            identity=identity,
        )
    if not _matches(identity.x5t_s256, thumbprint):
        raise Denied(
            RejectionReason.TOKEN_BINDING_MISMATCH,
            f"the access token is bound to x5t#S256 {thumbprint[:64]!r}, the client "
            f"certificate is {identity.x5t_s256}",
            where=WHERE,
            requirement=_REQUIREMENT,
            identity=identity,
        )
