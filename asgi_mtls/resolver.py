"""Stages 1 to 3 behind the cache: a scope in, an identity, none, or a typed rejection out.

For each source that sees something in the scope (``find``), the resolver checks that a
header source comes from a trusted proxy, then looks the raw values up in the cache; on a
miss it decodes them (``decode``), validates the certificate and maps it to a
:class:`~asgi_mtls.identity.ClientIdentity`, and caches the *outcome*.  Fail closed: whatever a
source, the validator or the principal strategy raises becomes a typed rejection
(``source_error``, ``validation_error``), never a 500 and never an anonymous pass (issue #8).
One identity per request: two sources presenting certificates is ``conflicting_sources``.

A server-verified name (:class:`~asgi_mtls.sources.ServerVerifiedNameSource`, the opt-in of
issue #12) takes the same path with no validation: the source reads the connection like the
``tls`` extension (per-connection memo, hidden on a trusted proxy's hop), is asked before it so
that a name without a certificate is its to judge, and its outcome is cached under its own
name like any other; the identity it gives conflicts with a header's like a certificate's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, Protocol

from asgi_mtls.authorization.roles import RoleMap
from asgi_mtls.cache import OutcomeCache, key_size
from asgi_mtls.errors import CertificateRejected, Rejection, RejectionReason
from asgi_mtls.identity import ClientIdentity, PrincipalStrategy, build_identity
from asgi_mtls.identity.reader import build_name_identity
from asgi_mtls.log import get_logger
from asgi_mtls.sources import (
    CertificateSource,
    HeaderSource,
    ServerVerifiedNameSource,
    TLSExtensionSource,
    TrustedProxies,
    transport_peer,
)
from asgi_mtls.sources.proxies import ProxyHops
from asgi_mtls.sources.tls import CONNECTION_EXTENSION
from asgi_mtls.sources.types import PresentedCertificate, PresentedName, RawValues
from asgi_mtls.validation import CertificateValidator

__all__ = ["NEGATIVE_TTL", "POSITIVE_TTL", "CertificateResolver"]

logger = get_logger()

#: How long a rejection is remembered (seconds): a client retrying a bad certificate costs a
#: lookup, and a fixed clock or trust problem is noticed within this time.
NEGATIVE_TTL: Final = 60.0
#: Upper bound on how long an accepted certificate is remembered (seconds).
POSITIVE_TTL: Final = 3600.0
#: What a cached identity is charged beyond its key: the parsed certificates (about three
#: times their DER) and the identity's own fields.
IDENTITY_OVERHEAD: Final = 2048


#: What the miss path computes: the outcome, until when it may be reused, the bytes it holds.
Verified = tuple["Outcome", float, int]


#: ``verify(key, source, raw, the resolver's own verify)``: what a miss path wraps.
WrapVerify = Callable[
    [Hashable, CertificateSource, RawValues, Callable[[CertificateSource, RawValues], Verified]],
    Verified,
]


class MissPath(Protocol):
    """Around the miss path (``asgi_mtls.observe``: events and the identity hook): the
    resolver calls its ``verify`` instead of verifying itself, and tells it of an ignored
    header."""

    @property
    def verify(self) -> WrapVerify: ...

    def ignored_header(self, scope: Mapping[str, Any], source: str, peer: object) -> None: ...


class _NoCertificate:
    """The cached outcome of raw values that say "no certificate" (nginx's verdict NONE)."""

    __slots__ = ()


NO_CERTIFICATE: Final = _NoCertificate()
Outcome = ClientIdentity | Rejection | _NoCertificate
#: What a connection's memo keeps for a resolver: the trust generation it holds for, until
#: when, the identity or the refusal the connection's certificate gave (both ``None``: no
#: certificate), and whether the peer is trusted by each header source (``None``: decided
#: per request).
ConnectionEntry = tuple[
    int, float, ClientIdentity | None, Rejection | None, tuple[bool, ...] | None
]
Find = Callable[[Mapping[str, Any]], RawValues | None]
#: A header source's recent-values table: the tail of the first value -> the raw values, their
#: accepted outcome and until when it holds (:meth:`CertificateResolver._header_outcome`).
Recent = dict[bytes, tuple[RawValues, "Outcome", float]]
#: One step of :meth:`CertificateResolver.resolve` per source read from headers: its position,
#: ``find``, the source, the proxies its values are believed from (``None``: anyone), and its
#: recent-values table (``None``: not a ``HeaderSource``, whose raw values have another shape).
Step = tuple[int, Find, CertificateSource, "TrustedProxies | None", "Recent | None"]
#: How many trailing bytes of a header value index the recent-values table: a certificate
#: encoding ends with its signature, which tells clients apart.
_TAIL: Final = 64
#: Entries of a recent-values table, and the bytes of raw values all of them may hold (the
#: identities are the cache's own).
_RECENT_ENTRIES: Final = 1024
_RECENT_BYTES: Final = 4 * 1024 * 1024
#: The sources that read the connection itself rather than a header: a server-verified name
#: (issue #12) and the ``tls`` extension, asked in this order.
_CONNECTION_SOURCES: Final = (ServerVerifiedNameSource, TLSExtensionSource)


def _failure(reason: RejectionReason, what: str, exc: Exception) -> Rejection:
    logger.error("%s failed unexpectedly; refusing the request", what, exc_info=exc)
    return Rejection(reason, f"{what}: {type(exc).__name__}: {exc}")


class CertificateResolver:
    """Who presented which certificate on a scope: see the module docstring."""

    def __init__(
        self,
        *,
        sources: Sequence[CertificateSource],
        validator: CertificateValidator,
        principal: PrincipalStrategy,
        roles: RoleMap | None,
        trusted_proxies: TrustedProxies,
        trust_scope_client: bool,
        ignore_untrusted_headers: bool,
        cache: OutcomeCache[Outcome],
        clock: Callable[[], float] = time.time,
        miss_path: MissPath | None = None,
    ) -> None:
        self.sources = tuple(sources)
        self.validator = validator
        self.principal = principal
        self.roles = roles
        self.trusted_proxies = trusted_proxies
        #: Proxies trusted by certificate: on their connections the tls extension is theirs.
        self._hops = ProxyHops.of(trusted_proxies, self.sources)
        #: What ``resolve`` runs, fixed here (issue #10): each source with the proxies its
        #: headers are believed from (``None`` for the tls extension).  A header source that
        #: no proxy may feed can never count, so it costs nothing: it is left out, and a
        #: refusal for a missing certificate says when its header was present
        #: (:meth:`ignored_headers`).
        self._plan: tuple[Step, ...] = tuple(
            (
                position,
                source.find,
                source,
                self._proxies_of(source) if source.requires_trusted_proxy else None,
                {} if type(source) is HeaderSource else None,
            )
            for position, source in enumerate(
                source
                for source in self.sources
                if not isinstance(source, _CONNECTION_SOURCES)
                and (not source.requires_trusted_proxy or self._proxies_of(source))
            )
        )
        #: The sources that read the connection itself (the tls extension): their outcome is
        #: the same for every request of a connection, so a server that offers a
        #: per-connection memo (``asgi_mtls.uvicorn``: :data:`CONNECTION_EXTENSION`) lets a
        #: keep-alive request skip them (issue #10).  A server-verified name first: it reads
        #: only a name without a certificate, which the tls extension would refuse (issue #12).
        self._connection_sources = tuple(
            source
            for kind in _CONNECTION_SOURCES
            for source in self.sources
            if isinstance(source, kind)
        )
        self._unfed = tuple(
            source
            for source in self.sources
            if source.requires_trusted_proxy and not self._proxies_of(source)
        )
        self.trust_scope_client = trust_scope_client
        self.ignore_untrusted_headers = ignore_untrusted_headers
        self.cache = cache
        self._accepted = cache.accepted
        self._clock = clock
        self._generation = validator.generation
        self._holder = validator.generation_holder
        #: The bytes of raw values the recent-values tables hold (:meth:`_header_outcome`).
        self._recent_bytes = 0
        #: Outcomes computed rather than found in the cache (each a decode and a validation).
        self.misses = 0
        #: Events, expiry warnings and the identity hook, on misses only (asgi_mtls.observe).
        self.miss_path = miss_path

    def resolve(self, scope: Mapping[str, Any]) -> ClientIdentity | None:
        """The identity of ``scope``'s client, ``None`` if it presented no certificate.

        Raises :class:`CertificateRejected` for anything presented but not acceptable.

        The hit path is this one function (issue #10: a Python call costs about what three
        dictionary probes do): the connection's memo (what the connection's certificate
        proved, and whether its peer is a trusted proxy), one pass over the headers per header
        source, the recent-values table; anything else goes to the helpers below.
        """
        generation = self._holder.generation  # read before validating anything
        if generation != self._generation:
            # Trust reloads and revocation updates bump it: drop every cached outcome, so
            # a newly revoked client is refused on its next request.
            self.cache.clear()
            self._forget_recent()
            self._generation = generation
        now = self._clock()  # one reading for the whole request
        extensions = scope.get("extensions")
        memo = extensions.get(CONNECTION_EXTENSION) if type(extensions) is dict else None
        if type(memo) is dict:
            entry = memo.get(self)
            if entry is None or entry[0] != generation or entry[1] <= now:
                entry = memo[self] = self._connection_entry(scope, generation, remember=True)
        else:
            entry = self._connection_entry(scope, generation, remember=False)
        _, _, found, refusal, trusted = entry
        if refusal is not None:
            raise refusal.exception()
        if not self._plan:
            return found
        for position, find, source, proxies, recent in self._plan:
            try:
                raw = find(scope)
            except Exception as exc:
                raise _failure(RejectionReason.SOURCE_ERROR, source.name, exc).exception() from None
            if raw is None:
                continue
            if proxies is not None and not (
                trusted[position]
                if trusted is not None
                else proxies.trusts_scope(scope, self.trust_scope_client)
            ):
                self._untrusted(source, scope)  # raises, unless told to ignore
                continue
            if recent is not None:  # a HeaderSource: raw is ((slot, bytes), ...)
                tail: bytes = raw[0][1][-_TAIL:]  # type: ignore[index]
                seen = recent.get(tail)
                if seen is not None and seen[0] == raw and seen[2] > now:
                    outcome = seen[1]
                else:
                    outcome = self._header_outcome(source, raw, recent, tail)
            else:
                outcome = self._outcome(source, (source.name, raw), raw)[0]
            if isinstance(outcome, ClientIdentity):
                if found is not None:
                    raise CertificateRejected(
                        RejectionReason.CONFLICTING_SOURCES,
                        f"certificates from {found.source}, {outcome.source}",
                    )
                found = outcome
            elif isinstance(outcome, Rejection):
                raise outcome.exception()
        return found

    def _connection_entry(
        self, scope: Mapping[str, Any], generation: int, *, remember: bool
    ) -> ConnectionEntry:
        """What is the same for every request of ``scope``'s connection, as a connection's
        memo keeps it (:data:`ConnectionEntry`).  Whether the peer may send each header
        source's values is decided here only for a memo (``remember``), and only when it is
        a fact of the connection: the transport peer or the connection's certificate, not
        ``scope["client"]`` (``trust_scope_client``)."""
        trusted = (
            None
            if self.trust_scope_client or not remember
            else tuple(
                proxies is None or proxies.trusts_scope(scope, False)
                for _, _, _, proxies, _ in self._plan
            )
        )
        for source in self._connection_sources:
            raw = self._find(source, scope)
            if raw is None:
                continue
            if self._hops is not None and self._hops.hides(source, scope):
                break  # the proxy's own certificate, never the client's
            outcome, expires_at = self._outcome(source, (source.name, raw), raw)
            if isinstance(outcome, ClientIdentity):
                return (generation, expires_at, outcome, None, trusted)
            if isinstance(outcome, Rejection):
                return (generation, expires_at, None, outcome, trusted)
            return (generation, expires_at, None, None, trusted)
        return (generation, math.inf, None, None, trusted)

    def _header_outcome(
        self, source: CertificateSource, raw: RawValues, recent: Recent, tail: bytes
    ) -> Outcome:
        """The outcome of a :class:`HeaderSource`'s ``raw`` values, not found in its
        recent-values table ``recent``; an accepted one is added there under ``tail``.

        The table spares a known client the hashing of its whole header (a forwarded
        certificate is 1-4 KiB, and hashing it was a tenth of a cached request: issue #10):
        it is keyed by the tail of the first value, where a certificate encoding ends with its
        signature, and a hit is the full comparison of the values.  Two clients with the same
        tail take turns in the table: a slower lookup for them, never the other's identity.
        Bounded in entries and bytes; emptied with the cache."""
        outcome, expires_at = self._outcome(source, (source.name, raw), raw)
        if isinstance(outcome, ClientIdentity):
            size = key_size(raw)
            if len(recent) >= _RECENT_ENTRIES or self._recent_bytes + size > _RECENT_BYTES:
                self._forget_recent()
            recent[tail] = (raw, outcome, expires_at)
            self._recent_bytes += size
        return outcome

    def _forget_recent(self) -> None:
        for step in self._plan:
            if step[4] is not None:
                step[4].clear()
        self._recent_bytes = 0

    def forget_connection(self, scope: Mapping[str, Any]) -> None:
        """Drop what the connection's memo holds for this resolver: an outcome that must not
        outlive its request (the identity hook's failure, never cached; asgi_mtls.hooks)."""
        extensions = scope.get("extensions")
        memo = extensions.get(CONNECTION_EXTENSION) if type(extensions) is dict else None
        if type(memo) is dict:
            memo.pop(self, None)

    def _find(self, source: CertificateSource, scope: Mapping[str, Any]) -> RawValues | None:
        try:
            return source.find(scope)
        except Exception as exc:
            raise _failure(RejectionReason.SOURCE_ERROR, source.name, exc).exception() from None

    def _outcome(
        self, source: CertificateSource, key: tuple[str, RawValues], raw: RawValues
    ) -> tuple[Outcome, float]:
        """The outcome of ``raw`` and until when it holds: a known client is one probe of the
        accepted entries (issue #10); else the whole cache, else a miss.  A refusal or an
        outcome the cache did not keep holds for :data:`NEGATIVE_TTL` at most."""
        try:
            hit = self._accepted.get(key)
        except TypeError:  # unhashable raw values: a source that let something odd in
            raise _failure(
                RejectionReason.SOURCE_ERROR, source.name, TypeError("unhashable raw values")
            ).exception() from None
        if hit is not None and hit[1] > self._clock():
            return hit[0], hit[1]
        outcome = self.cache.get(key) or self._miss(key, source, raw)
        kept = self._accepted.get(key)
        return outcome, kept[1] if kept is not None else self._clock() + NEGATIVE_TTL

    def _proxies_of(self, source: CertificateSource) -> TrustedProxies:
        own: TrustedProxies | None = getattr(source, "trusted_proxies", None)
        return own if own is not None else self.trusted_proxies  # [] trusts nobody

    def ignored_headers(self, scope: Mapping[str, Any]) -> list[str]:
        """The certificate headers on ``scope`` of sources no proxy may feed (left out of
        :meth:`resolve`): for the log line of a request refused for want of a certificate,
        where the fix is ``trusted_proxies=``.  Only called on that refusal."""
        return [source.name for source in self._unfed if source.find(scope) is not None]

    def _untrusted(self, source: CertificateSource, scope: Mapping[str, Any]) -> None:
        """A header source's values from a peer that is not a trusted proxy:
        ``untrusted_proxy``, or ignored if so configured."""
        peer = transport_peer(scope, trust_scope_client=self.trust_scope_client)
        if self.ignore_untrusted_headers:
            if self.miss_path is not None:
                self.miss_path.ignored_header(scope, source.name, peer)
            return
        why = "unknown transport peer" if peer is None else f"peer {peer}"
        raise CertificateRejected(
            RejectionReason.UNTRUSTED_PROXY,
            f"{source.name} certificate header from untrusted {why}",
            source=source.name,
        )

    def _miss(
        self, key: tuple[str, RawValues], source: CertificateSource, raw: RawValues
    ) -> Outcome:
        self.misses += 1
        if self.miss_path is None:
            outcome, expires_at, size = self._verify(source, raw)
        else:  # events, expiry warnings, the identity hook (asgi_mtls.observe)
            outcome, expires_at, size = self.miss_path.verify(key, source, raw, self._verify)
        refusal = isinstance(outcome, Rejection)
        self.cache.put(key, outcome, expires_at, size=size, refusal=refusal)
        return outcome

    def _verify(self, source: CertificateSource, raw: RawValues) -> tuple[Outcome, float, int]:
        """Decode, validate and map ``raw``: the outcome, until when it may be reused, and
        the bytes it holds."""
        now = self._clock()
        try:
            presented = source.decode(raw)
        except CertificateRejected as exc:
            return exc.rejection, now + NEGATIVE_TTL, len(exc.log_detail)
        except Exception as exc:  # a source's bug is a refusal, never a 500
            rejection = _failure(RejectionReason.SOURCE_ERROR, source.name, exc)
            return rejection, now + NEGATIVE_TTL, len(rejection.detail)
        if presented is None:
            return NO_CERTIFICATE, now + POSITIVE_TTL, 0
        try:
            identity, expires_at, size = self._identify(source, presented, now)
        except CertificateRejected as exc:
            return exc.rejection, now + NEGATIVE_TTL, len(exc.log_detail)
        except Exception as exc:  # fail closed: any validator fault is a rejection
            rejection = _failure(RejectionReason.VALIDATION_ERROR, "certificate validation", exc)
            return rejection, now + NEGATIVE_TTL, len(rejection.detail)
        return identity, min(expires_at, now + POSITIVE_TTL), size

    def _identify(
        self, source: CertificateSource, presented: PresentedCertificate | PresentedName, now: float
    ) -> tuple[ClientIdentity, float, int]:
        """The identity, until when it holds, and the bytes it holds."""
        if isinstance(presented, PresentedName):
            # Issue #12: nothing to validate, the server's word only; no notAfter bounds it.
            identity = build_name_identity(
                presented.name, source=source.name, principal=self.principal
            )
            expires_at = now + POSITIVE_TTL
            size = IDENTITY_OVERHEAD + 4 * len(presented.text)
        else:
            verified = self.validator.validate(presented.leaf, presented.chain)
            identity = build_identity(
                verified.chain,
                source=source.name,
                principal=self.principal,
                subject=verified.subject,
            )
            expires_at = verified.expires_at.timestamp()
            size = IDENTITY_OVERHEAD + 3 * (len(presented.leaf) + sum(map(len, presented.chain)))
        if self.roles is not None:
            identity = replace(identity, roles=self.roles.roles_for(identity))
        return identity, expires_at, size
