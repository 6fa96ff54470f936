"""Listeners and the one object that calls them: :class:`EventBus`.

A listener is any callable taking one event (``def listener(event): ...``, or an object with
``__call__``).  It runs inline, on the event loop or the worker thread that made the
decision, so it must be quick: count, set an attribute, hand off; never do I/O.  A listener
that raises is logged on ``asgi_mtls.listeners`` and the decision stands (DESIGN: "a listener
never changes a decision").

Per-request events (:class:`~asgi_mtls.events.types.Authenticated`,
:class:`~asgi_mtls.events.types.Anonymous`) are the only ones on the cached hit path; a
listener that does not want them says ``hits = False`` (the log listener does), and a
middleware none of whose listeners want them never builds them: the hit path is then exactly
the one without listeners (issue #13: zero cost when absent).  The choice is made once, when
the middleware is built.

Code that runs inside the app (route requirements, ``rejection_handler``) finds the bus of
the middleware in front of it with :func:`bus_for`: the middleware registers its bus under
the router it serves (Starlette puts that router in every scope as ``scope["router"]``) and
under each app it wraps; anything else reports to a bus holding the log listener alone.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

from asgi_mtls.errors import CertificateRejected, Denied
from asgi_mtls.events.types import Event, Forbidden, Rejected
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.validation.notices import Notices, ValidationNotice

__all__ = ["EventBus", "Listener", "bus_for", "default_bus", "register"]


class Listener(Protocol):
    """Called with every event (and validation notice).  An optional attribute ``hits``
    (default ``True``) says whether it takes the per-request events of cached hits."""

    def __call__(self, event: Event | ValidationNotice, /) -> object: ...


class EventBus:
    """The listeners of one middleware: :meth:`emit` for every event, :meth:`emit_hit` for
    the per-request ones (only the listeners with ``hits``), :meth:`refused` for a refusal.

    :attr:`hits` is false when no listener takes per-request events: the middleware then
    emits none.
    """

    __slots__ = ("__weakref__", "_all", "_taking_hits", "hits", "listeners")

    def __init__(self, listeners: Iterable[Listener]) -> None:
        self.listeners = tuple(listeners)
        self._all: Notices[Event | ValidationNotice] = Notices(self.listeners)
        self._taking_hits = tuple(
            listener for listener in self.listeners if getattr(listener, "hits", True)
        )
        self.hits = bool(self._taking_hits)

    def __bool__(self) -> bool:
        return bool(self.listeners)

    def emit(self, event: Event | ValidationNotice) -> None:
        """Every listener gets ``event``; a failing one is logged, never raised."""
        self._all(event)

    def emit_hit(self, event: Event) -> None:
        """The listeners that take per-request events get ``event``."""
        self._all.call(self._taking_hits, event)

    def refused(self, scope: Mapping[str, Any], exc: CertificateRejected, peer: object) -> None:
        """A refused request: :class:`Forbidden` for an authorization refusal
        (:class:`~asgi_mtls.errors.Denied`), else :class:`Rejected`.  ``peer``: the transport
        peer (``None`` when unknown)."""
        text = None if peer is None else str(peer)
        if isinstance(exc, Denied):
            self._all(
                Forbidden(
                    scope,
                    exc.reason,
                    exc.log_detail,
                    text,
                    exc.identity if isinstance(exc.identity, ClientIdentity) else None,
                    exc.where,
                    exc.requirement,
                )
            )
        else:
            self._all(Rejected(scope, exc.reason, exc.log_detail, text, exc.source))


#: Bus of the middleware in front of each router or app, by the object's id (Starlette's
#: ``Router`` is not hashable), with a weak reference to it (see :func:`bus_for`).
_REGISTRY: Final[dict[int, tuple[weakref.ref[Any], EventBus]]] = {}
_DEFAULT: list[EventBus] = []


def default_bus() -> EventBus:
    """The bus of code no middleware serves: the log listener alone."""
    if not _DEFAULT:
        from asgi_mtls.events.log import LogListener

        _DEFAULT.append(EventBus([LogListener()]))
    return _DEFAULT[0]


def register(bus: EventBus, apps: Iterable[object]) -> None:
    """Make ``bus`` the one :func:`bus_for` finds for scopes served by ``apps`` (the apps
    and routers a middleware wraps).  Weak: an app that goes away takes its entry along."""
    for app in apps:
        key = id(app)
        try:
            reference = weakref.ref(app, functools.partial(_forget, _REGISTRY, key))
        except TypeError:  # not weak-referenceable: not an app or router of Starlette's
            continue
        _REGISTRY[key] = (reference, bus)


def _forget(
    registry: dict[int, tuple[weakref.ref[Any], EventBus]], key: int, _: weakref.ref[Any]
) -> None:
    """Drop ``key``'s entry once its app is gone (the registry is bound when registered:
    this may run while the interpreter shuts down and the module's globals are cleared)."""
    entry = registry.get(key)
    if entry is not None and entry[0]() is None:
        del registry[key]


def bus_for(scope: Mapping[str, Any]) -> EventBus:
    """The bus of the middleware serving ``scope``: found under ``scope["router"]`` (set by
    Starlette's router) or ``scope["app"]``; else :func:`default_bus`.  Two dictionary
    probes, on refusal and report paths only."""
    for key in ("router", "app"):
        app = scope.get(key)
        if app is not None:
            entry = _REGISTRY.get(id(app))
            if entry is not None and entry[0]() is app:
                return entry[1]
    return default_bus()
