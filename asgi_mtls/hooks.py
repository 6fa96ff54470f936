"""The identity hook: the app's own look-up of a client, once per certificate (issue #13).

::

    async def on_identity(identity: ClientIdentity) -> ClientIdentity | None:
        account = await db.account_for(identity.principal)
        if account is None or account.disabled:
            return None                                  # refused: identity_refused (403)
        return identity.with_extra(tenant=account.tenant)

    app.add_middleware(MTLSMiddleware, trust="clients-ca.pem", on_identity=on_identity)

When the hook runs.  Never on a cached request: the resolver validates a certificate it has
not seen (a cache miss) synchronously, and, with a hook configured, hands the new identity
back as a :class:`PendingIdentity` instead of caching it.  The middleware awaits the hook
(:meth:`HookRunner.resume`), caches what it answers *in place of* the identity, and serves
the request again from there: every later request of the certificate is a cache hit on the
hook's answer, until the entry expires (the certificate's validation result, one hour at
most, or the hook's ``ttl``).  Concurrent first requests of one certificate share one call.

Fail closed.  ``None`` refuses the client (``identity_refused``, 403, cached like any
refusal, 60 s).  An exception, an answer other than an identity of the same certificate,
or no answer within ``timeout`` refuses the request (``identity_hook_error`` /
``identity_hook_timeout``, 503) and is *not* cached: the next request asks again.  A
:class:`PendingIdentity` that reaches anything but the middleware is itself a refusal
(``identity_hook_error``), so no code path can hand out an identity the hook has not seen.

A trust reload or revocation update while the hook runs: its answer serves the request that
asked, but is not cached (the certificate is validated again on its next request).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, Final

from asgi_mtls.errors import CertificateRejected, Rejection, RejectionReason
from asgi_mtls.events.types import IdentityHookFailed
from asgi_mtls.identity import ClientIdentity

if TYPE_CHECKING:
    from asgi_mtls.cache import OutcomeCache
    from asgi_mtls.events.dispatch import EventBus
    from asgi_mtls.validation import CertificateValidator

__all__ = ["HookRunner", "IdentityHook", "IdentityHookFunction", "PendingIdentity"]

#: ``on_identity``: the identity in, the identity to use (the same certificate) or ``None``.
IdentityHookFunction = Callable[[ClientIdentity], Awaitable[ClientIdentity | None]]
#: What a miss path returns: the outcome, until when it may be cached, the bytes it holds.
Settled = tuple[Any, float, int]

#: The outcomes settled for the request being served (its task), by cache key.
_SETTLED: Final[contextvars.ContextVar[dict[Hashable, Settled] | None]] = contextvars.ContextVar(
    "asgi_mtls_settled", default=None
)


@dataclass(frozen=True, slots=True)
class IdentityHook:
    """``on_identity`` with its limits.

    :param function: ``async def on_identity(identity) -> identity | None``.
    :param timeout: seconds the hook may take (then ``identity_hook_timeout``).
    :param ttl: seconds an answer is kept at most (``None``: as long as the certificate's
        validation result, at most an hour): how soon a client disabled in the app's
        database is refused.
    """

    function: IdentityHookFunction
    timeout: float = 5.0
    ttl: float | None = None

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(f"on_identity must be an async callable, not {self.function!r}")
        if not asyncio.iscoroutinefunction(self.function) and not asyncio.iscoroutinefunction(
            getattr(self.function, "__call__", None)  # noqa: B004 - an object's async __call__
        ):
            raise TypeError(
                f"on_identity must be an async function (async def), got {self.function!r}"
            )
        if self.timeout <= 0:
            raise ValueError("on_identity timeout must be > 0")
        if self.ttl is not None and self.ttl <= 0:
            raise ValueError("on_identity ttl must be > 0")

    @classmethod
    def of(cls, value: IdentityHook | IdentityHookFunction) -> IdentityHook:
        return value if isinstance(value, IdentityHook) else cls(value)


class PendingIdentity(CertificateRejected):
    """A new certificate's identity, validated, waiting for the hook.  Raised by the miss
    path; the middleware settles it.  Anywhere else it is what it derives from: a refusal
    (``identity_hook_error``), never an identity."""

    def __init__(
        self, key: Hashable, identity: ClientIdentity, expires_at: float, size: int, generation: int
    ) -> None:
        super().__init__(
            RejectionReason.IDENTITY_HOOK_ERROR,
            "identity hook not run: the identity was resolved outside MTLSMiddleware",
            source=identity.source,
        )
        self.key = key
        self.identity = identity
        self.expires_at = expires_at
        self.size = size
        self.generation = generation


def _same_certificate(answer: object, identity: ClientIdentity) -> bool:
    """Whether the hook's ``answer`` is an identity of the same certificate (for a
    server-verified name, issue #12: of the same name, which ``__post_init__`` keeps free of
    a certificate, SANs and principals of other kinds)."""
    return (
        isinstance(answer, ClientIdentity)
        and answer.certificate == identity.certificate
        and answer.chain == identity.chain
        and answer.source == identity.source
        and answer.verified_by == identity.verified_by
        and answer.server_subject == identity.server_subject
    )


@dataclass(eq=False)
class HookRunner:
    """Runs one middleware's identity hook (see the module docstring)."""

    hook: IdentityHook
    _: KW_ONLY
    cache: OutcomeCache[Any]
    validator: CertificateValidator
    bus: EventBus | None
    negative_ttl: float
    clock: Callable[[], float] = time.time
    running: dict[Hashable, asyncio.Future[Settled]] = field(default_factory=dict, init=False)
    #: Times the hook was called (diagnostics and tests).
    calls: int = field(default=0, init=False)

    @staticmethod
    def settled(key: Hashable) -> Settled | None:
        """The outcome the hook settled for ``key`` in the request being served, if any
        (the miss path returns it instead of validating again)."""
        settled = _SETTLED.get()
        return None if settled is None else settled.get(key)

    async def resume(
        self,
        pending: PendingIdentity,
        call: Callable[[], Awaitable[None]],
        *,
        forget: Callable[[], None],
    ) -> None:
        """Settle ``pending`` (one hook call per certificate at a time), then serve the request
        again with ``call``: the certificate now resolves to the hook's answer.  ``forget``
        drops what the request's connection remembered of it, when the answer is not to be
        kept (a failure: the next request, on this connection too, asks again)."""
        settled = await self._settle(pending)
        token = _SETTLED.set({**(_SETTLED.get() or {}), pending.key: settled})
        try:
            await call()
        finally:
            _SETTLED.reset(token)
            if settled[1] == 0.0:
                forget()

    async def _settle(self, pending: PendingIdentity) -> Settled:
        running = self.running.get(pending.key)
        if running is None or running.get_loop() is not asyncio.get_running_loop():
            running = asyncio.ensure_future(self._run(pending))
            self.running[pending.key] = running
            running.add_done_callback(lambda done: self._forget(pending.key, done))
        # Shielded: a client that goes away does not cancel the answer others wait for.
        return await asyncio.shield(running)

    def _forget(self, key: Hashable, done: asyncio.Future[Settled]) -> None:
        if self.running.get(key) is done:
            del self.running[key]

    async def _run(self, pending: PendingIdentity) -> Settled:
        identity = pending.identity
        self.calls += 1
        try:
            answer = await asyncio.wait_for(self.hook.function(identity), self.hook.timeout)
        except TimeoutError:
            return self._failed(
                pending,
                None,
                RejectionReason.IDENTITY_HOOK_TIMEOUT,
                f"on_identity gave no answer in {self.hook.timeout:g} s",
            )
        except Exception as exc:  # the app's bug or outage: refused, never a 500 or a pass
            return self._failed(
                pending,
                exc,
                RejectionReason.IDENTITY_HOOK_ERROR,
                f"on_identity raised {type(exc).__name__}: {exc}",
            )
        now = self.clock()
        if answer is None:
            outcome: Any = Rejection(
                RejectionReason.IDENTITY_REFUSED,
                f"on_identity refused {identity.principal_kind.value} {identity.principal!r}",
                identity.source,
            )
            expires_at = min(pending.expires_at, now + self.negative_ttl)
        elif _same_certificate(answer, identity):
            outcome = answer
            expires_at = pending.expires_at
            if self.hook.ttl is not None:
                expires_at = min(expires_at, now + self.hook.ttl)
        else:
            return self._failed(
                pending,
                TypeError(f"on_identity returned {answer!r}"),
                RejectionReason.IDENTITY_HOOK_ERROR,
                "on_identity returned neither None nor an identity of the same certificate "
                f"({type(answer).__name__})",
            )
        size = pending.size
        if self.validator.generation == pending.generation:
            self.cache.put(
                pending.key,
                outcome,
                expires_at,
                size=size,
                refusal=isinstance(outcome, Rejection),
            )
        # What the miss path returns from now on in this request: already cached (or, after a
        # trust change, not to be cached: an expiry in the past keeps it out).
        return (
            outcome,
            expires_at if self.validator.generation == pending.generation else 0.0,
            size,
        )

    def _failed(
        self,
        pending: PendingIdentity,
        error: BaseException | None,
        reason: RejectionReason,
        detail: str,
    ) -> Settled:
        if self.bus is not None:
            self.bus.emit(IdentityHookFailed(pending.identity, error, error is None))
        # Not cached (an expiry in the past): the next request asks the hook again.
        return Rejection(reason, detail, pending.identity.source), 0.0, 0
