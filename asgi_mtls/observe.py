"""What listeners and the identity hook add to the pipeline, kept off the cached hit path.

The resolver's hit path is one cache lookup (issue #10), and it stays that: everything here
runs where the work is already slow, or is wired in only when a listener asks for it, decided
once when the middleware is built (issue #13):

- :class:`MissPath` wraps the resolver's cache miss (a certificate met for the first time:
  decode, validate, map): it times the validation, emits
  :class:`~asgi_mtls.events.CertificateValidated`, warns of a certificate close to its
  notAfter (:class:`ExpiryWatch`, once per certificate), tags a refusal with its source, and
  hands a new identity to the identity hook (:mod:`asgi_mtls.hooks`).  It also reports a
  certificate header dropped from an untrusted peer (``on_untrusted_header="ignore"``).
- :func:`observe_requests` wraps the middleware's identify step to emit the per-request
  events (:class:`~asgi_mtls.events.Authenticated`, :class:`~asgi_mtls.events.Anonymous`);
  the middleware uses it only when a listener takes them (``hits``), so without one a cached
  request runs exactly the code it runs with no listener at all.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

from asgi_mtls.errors import Rejection
from asgi_mtls.events.dispatch import EventBus, Listener, register
from asgi_mtls.events.log import LogListener
from asgi_mtls.events.types import (
    Anonymous,
    Authenticated,
    CertificateExpiring,
    CertificateValidated,
    Configured,
    UntrustedHeader,
)
from asgi_mtls.hooks import HookRunner, IdentityHook, IdentityHookFunction, PendingIdentity
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.resolver import Verified

if TYPE_CHECKING:
    from asgi_mtls.cache import OutcomeCache
    from asgi_mtls.resolver import CertificateResolver
    from asgi_mtls.sources import CertificateSource
    from asgi_mtls.sources.types import RawValues
    from asgi_mtls.validation import CertificateValidator

__all__ = ["DEFAULT_EXPIRY_WARNING", "ExpiryWatch", "MissPath", "Observers", "observe_requests"]

#: Default expiry warning window (``MTLSMiddleware(expiry_warning=...)``).
DEFAULT_EXPIRY_WARNING: Final = dt.timedelta(days=14)
#: A short-lived certificate is warned of only once less than this share of its lifetime is
#: left: a one-hour SPIFFE SVID renewed at half-life never is; one its client failed to renew
#: is.
LIFETIME_SHARE: Final = 1 / 3
#: Certificates remembered as warned of (then the memory starts over).
MAX_WARNED: Final = 10_000

S = TypeVar("S", bound=Mapping[str, Any])


class ExpiryWatch:
    """Says once per certificate that it is close to its notAfter: less than ``window`` left,
    and less than a third of its lifetime (see :data:`LIFETIME_SHARE`)."""

    def __init__(self, window: dt.timedelta, clock: Callable[[], float] = time.time) -> None:
        if window <= dt.timedelta(0):
            raise ValueError("expiry_warning must be a positive duration")
        self.window = window
        self._clock = clock
        self._warned: set[bytes] = set()

    def check(self, identity: ClientIdentity) -> CertificateExpiring | None:
        """The event for ``identity`` if it is due and not said before, else ``None`` (always
        for a server-verified name, which has no validity to watch: issue #12)."""
        if identity.certificate is None:
            return None
        not_after = identity.not_after
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        remaining = not_after - now
        if remaining > self.window:
            return None
        if remaining > (not_after - identity.not_before) * LIFETIME_SHARE:
            return None
        digest = identity.der_sha256
        if digest in self._warned:
            return None
        if len(self._warned) >= MAX_WARNED:
            self._warned.clear()
        self._warned.add(digest)
        return CertificateExpiring(identity, remaining)


class MissPath:
    """The resolver's cache miss, observed (see the module docstring).

    :param bus: the middleware's listeners (``None``: no events).
    :param hooks: the identity hook's runner (``None``: no hook).
    :param expiry: the expiry warning (``None``: off).
    :param validator: whose generation a pending identity records.
    """

    def __init__(
        self,
        *,
        bus: EventBus | None,
        hooks: HookRunner | None,
        expiry: ExpiryWatch | None,
        validator: CertificateValidator,
    ) -> None:
        self.bus = bus
        self.hooks = hooks
        self.expiry = expiry if bus is not None else None
        self._validator = validator

    def verify(
        self,
        key: Hashable,
        source: CertificateSource,
        raw: RawValues,
        verify: Callable[[CertificateSource, RawValues], Verified],
    ) -> Verified:
        """``verify(source, raw)`` with events and the hook: what the resolver caches.

        Raises :class:`~asgi_mtls.hooks.PendingIdentity` for a new identity while a hook is
        configured (unless the hook already answered for it in this request)."""
        hooks = self.hooks
        if hooks is not None:
            settled = hooks.settled(key)
            if settled is not None:
                return settled
        generation = self._validator.generation  # before validating, as the resolver reads it
        started = time.perf_counter()
        outcome, expires_at, size = verify(source, raw)
        seconds = time.perf_counter() - started
        if isinstance(outcome, Rejection) and outcome.source is None:
            outcome = replace(outcome, source=source.name)
        if self.bus is not None:
            self._emit(source.name, outcome, seconds)
        if hooks is not None and isinstance(outcome, ClientIdentity):
            raise PendingIdentity(key, outcome, expires_at, size, generation)
        return outcome, expires_at, size

    def _emit(self, source: str, outcome: object, seconds: float) -> None:
        assert self.bus is not None
        if isinstance(outcome, ClientIdentity):
            self.bus.emit(CertificateValidated(source, outcome, None, seconds))
            if self.expiry is not None:
                expiring = self.expiry.check(outcome)
                if expiring is not None:
                    self.bus.emit(expiring)
        elif isinstance(outcome, Rejection):
            self.bus.emit(CertificateValidated(source, None, outcome.reason, seconds))

    def ignored_header(self, scope: Mapping[str, Any], source: str, peer: object) -> None:
        """A certificate header from an untrusted peer was dropped (``"ignore"`` mode)."""
        if self.bus is not None:
            self.bus.emit(UntrustedHeader(scope, source, None if peer is None else str(peer)))


def observe_requests(
    identify: Callable[[S], ClientIdentity | None],
    resolver: CertificateResolver,
    bus: EventBus,
) -> Callable[[S], ClientIdentity | None]:
    """``identify`` emitting :class:`Authenticated` (``cached`` when the resolver validated
    nothing for it) or :class:`Anonymous` for every request it identifies.  A refusal
    propagates unreported: the middleware reports it when it answers."""
    emit = bus.emit_hit

    def identify_observed(scope: S) -> ClientIdentity | None:
        misses = resolver.misses
        identity = identify(scope)
        if identity is None:
            emit(Anonymous(scope))
        else:
            emit(Authenticated(scope, identity, resolver.misses == misses))
        return identity

    return identify_observed


@dataclass(frozen=True)
class Observers:
    """What one middleware was configured with: its listeners (``bus``, always built;
    ``events`` is ``None`` when it holds none), the identity hook, and the miss path the
    resolver gets (``None`` when there is nothing to do on a miss)."""

    bus: EventBus
    events: EventBus | None
    hooks: HookRunner | None
    miss_path: MissPath | None

    @classmethod
    def build(
        cls,
        *,
        listeners: Iterable[Listener] | None,
        on_identity: IdentityHookFunction | IdentityHook | None,
        expiry_warning: dt.timedelta | float | None,
        cache: OutcomeCache[Any],
        validator: CertificateValidator,
        negative_ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> Observers:
        """``MTLSMiddleware``'s ``listeners``, ``on_identity`` and ``expiry_warning``, built."""
        bus = EventBus([LogListener()] if listeners is None else listeners)
        events = bus if bus else None
        hooks = None
        if on_identity is not None:
            hooks = HookRunner(
                IdentityHook.of(on_identity),
                cache=cache,
                validator=validator,
                bus=events,
                negative_ttl=negative_ttl,
                clock=clock,
            )
        expiry = None
        if expiry_warning is not None:
            if not isinstance(expiry_warning, dt.timedelta):
                expiry_warning = dt.timedelta(seconds=expiry_warning)
            expiry = ExpiryWatch(expiry_warning, clock)
        miss_path = None
        if events is not None or hooks is not None:
            miss_path = MissPath(bus=events, hooks=hooks, expiry=expiry, validator=validator)
        return cls(bus, events, hooks, miss_path)

    def attach(
        self,
        *,
        app: Iterable[object],
        validator: CertificateValidator,
        cache: OutcomeCache[Any],
        identify: Callable[[S], ClientIdentity | None],
        resolver: CertificateResolver,
    ) -> Callable[[S], ClientIdentity | None]:
        """Wire the listeners in once the middleware is built: registered under the apps it
        wraps (``app``: its ``.app`` chain) for code inside the app, told of the validator's
        reloads and of the cache; returns ``identify``, wrapped for per-request events only
        when a listener takes them."""
        register(self.bus, app)
        if self.events is None:
            return identify
        validator.observe(self.events.emit)
        self.events.emit(Configured(cache.__len__, lambda: cache.bytes))
        if not self.events.hits:
            return identify
        return observe_requests(identify, resolver, self.events)
