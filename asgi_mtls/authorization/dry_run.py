"""Report mode: a requirement that reports what it would refuse, and refuses nothing.

Rolling a stricter policy out on a live service is safer in two steps, as Istio's
``istio.io/dry-run`` and Envoy's shadow rules do it: first watch what it would refuse, then
enforce it.  ``dry_run(requirement)`` is that first step (issue #13)::

    @app.get("/payments", dependencies=[Depends(dry_run(role("payments")))])
    async def payments(): ...

    app.add_middleware(
        MTLSMiddleware,
        trust="clients-ca.pem",
        policies=dry_run({"/admin/*": role("admin")}),   # the whole table
        deny_by_default="dry_run",
    )

The requirement is evaluated exactly as it would be enforced; where it would refuse, a
:class:`~asgi_mtls.events.WouldDeny` event goes to the middleware's listeners (a
``dry run: would refuse`` log line, the ``asgi_mtls_would_deny_total`` metric) and the
request goes on.  **A dry-run requirement protects nothing**: the route is as open as without
it (an anonymous caller included).  It counts as a declaration for ``deny_by_default`` (the
route is being rolled out, not forgotten), and ``asgi-mtls routes`` lists it as ``dry_run``.
As a FastAPI dependency it returns the identity, or ``None`` for an anonymous request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from starlette.requests import HTTPConnection

from asgi_mtls.authorization.endpoints import Declarable, F, Public, guard
from asgi_mtls.authorization.requirements import Requirement
from asgi_mtls.errors import CertificateRejected
from asgi_mtls.events.dispatch import bus_for
from asgi_mtls.events.types import Event, WouldDeny
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.inject import get_client_identity

__all__ = ["DryRun", "dry_run"]

K = TypeVar("K")


class DryRun(Declarable):
    """``requirement`` in report mode (see the module docstring)."""

    def __init__(self, requirement: Requirement) -> None:
        if not isinstance(requirement, Requirement):
            raise TypeError(f"dry_run needs a requirement, not {requirement!r}")
        self.requirement = requirement

    def __repr__(self) -> str:
        return f"dry_run({self.requirement!r})"

    def describe(self) -> str:
        return f"dry run: {self.requirement.describe()}"

    def evaluate(
        self,
        scope: Mapping[str, Any],
        identity: ClientIdentity | None,
        *,
        where: str,
        report: Callable[[Event], object] | None,
    ) -> None:
        """Check ``identity`` as the requirement would; report a refusal, never raise it."""
        try:
            self.requirement.verify(identity, context="" if where == "route" else where)
        except CertificateRejected as exc:
            if report is not None:
                report(
                    WouldDeny(
                        scope,
                        exc.reason,
                        exc.log_detail,
                        identity,
                        where,
                        self.requirement.describe(),
                    )
                )

    def check(self, connection: HTTPConnection | Mapping[str, Any]) -> ClientIdentity | None:
        """The identity on ``connection`` (``None``: anonymous), reported if it would be
        refused."""
        scope = connection.scope if isinstance(connection, HTTPConnection) else connection
        identity = get_client_identity(connection)
        self.evaluate(scope, identity, where="route", report=bus_for(scope).emit)
        return identity

    async def _dependency(self, connection: HTTPConnection) -> ClientIdentity | None:
        return self.check(connection)

    def _decorate(self, endpoint: F) -> F:
        return guard(self, endpoint)


@overload
def dry_run(target: Requirement | DryRun) -> DryRun: ...


@overload
def dry_run(target: Mapping[K, Any]) -> dict[K, Any]: ...


def dry_run(target: Any) -> Any:
    """Report mode for a requirement, or for every requirement of a path table (``PUBLIC``
    entries stay as they are).  See the module docstring."""
    if isinstance(target, DryRun):
        return target
    if isinstance(target, Requirement):
        return DryRun(target)
    if isinstance(target, Mapping):
        return {
            key: value if isinstance(value, Public | DryRun) else DryRun(value)
            for key, value in target.items()
        }
    raise TypeError(f"dry_run needs a requirement or a path table, not {target!r}")
