"""Prometheus metrics for the middleware's decisions (extra ``prometheus``).

::

    from asgi_mtls.events import LogListener
    from asgi_mtls.prometheus import PrometheusListener

    app.add_middleware(
        MTLSMiddleware, trust="clients-ca.pem",
        listeners=[LogListener(), PrometheusListener()],
    )

and expose the registry as usual (``prometheus_client.make_asgi_app()`` mounted on a route,
or ``start_http_server``).  Names follow Prometheus's conventions (base units, ``_total`` on
counters), and no label ever holds a principal, a certificate or a request path, so the
number of series is bounded by the configuration:

========================================================  ==========  ===========================
metric                                                    type        labels
========================================================  ==========  ===========================
``asgi_mtls_requests_total``                              counter     ``outcome``, ``reason``,
                                                                      ``source``
``asgi_mtls_authorization_denials_total``                 counter     ``reason``, ``where``
``asgi_mtls_validation_duration_seconds``                 histogram   (misses only)
``asgi_mtls_cache_entries``                               gauge       (read when scraped)
``asgi_mtls_client_certificate_expiry_seconds``           histogram   (time left, at validation)
``asgi_mtls_client_certificates_expiring_total``          counter     (once per certificate)
``asgi_mtls_would_deny_total``                            counter     ``reason``, ``where``
``asgi_mtls_trust_reloads_total``                         counter     ``outcome``
``asgi_mtls_revocation_updates_total``                    counter     ``kind``, ``outcome``
``asgi_mtls_untrusted_headers_total``                     counter     ``source``
``asgi_mtls_identity_hook_failures_total``                counter     ``kind``
========================================================  ==========  ===========================

``asgi_mtls_requests_total`` counts every request once, by how its client was identified:
``outcome`` is ``authenticated``, ``anonymous`` or ``rejected`` (a certificate presented and
refused, or the identity hook's refusal); ``reason`` the refusal's code (empty otherwise);
``source`` the certificate source (``tls``, ``nginx``...; empty when none).  What
authorization then refused (``forbidden``, ``missing`` where a certificate is required, a
token binding code) is counted in ``asgi_mtls_authorization_denials_total``, by ``where``
(``route``, ``policy /admin/*``, ``deny_by_default``, ``require_certificate``,
``token binding``: bounded by the configuration).  The per-request counts make this listener
take the cached hit path (``hits``); its cost there is measured in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from asgi_mtls.events import types as kinds
from asgi_mtls.validation.notices import (
    RevocationFetchFailed,
    RevocationUpdated,
    TrustReloaded,
    TrustReloadFailed,
    ValidationNotice,
)

__all__ = ["EXPIRY_BUCKETS", "VALIDATION_BUCKETS", "PrometheusListener"]

#: Seconds a validation of a new certificate takes: tens of microseconds to a few ms.
VALIDATION_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
)
_HOUR: Final = 3600.0
_DAY: Final = 24 * _HOUR
#: Time left on a certificate when validated: an hour (SPIFFE SVIDs) to two years.
EXPIRY_BUCKETS: Final = (
    _HOUR,
    6 * _HOUR,
    _DAY,
    3 * _DAY,
    7 * _DAY,
    14 * _DAY,
    30 * _DAY,
    90 * _DAY,
    180 * _DAY,
    365 * _DAY,
    730 * _DAY,
)


class PrometheusListener:
    """Counts and times the middleware's decisions in a Prometheus registry.

    :param registry: where the metrics are registered (default: ``prometheus_client``'s
        global ``REGISTRY``).  Two listeners cannot share a registry (the names would clash);
        give each its own, or one listener to several middlewares.
    :param namespace: the metric name prefix.
    """

    #: Takes the per-request events (every request is counted).
    hits = True

    def __init__(
        self, registry: CollectorRegistry | None = None, *, namespace: str = "asgi_mtls"
    ) -> None:
        registry = REGISTRY if registry is None else registry

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, labels, namespace=namespace, registry=registry)

        def histogram(name: str, documentation: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(
                name, documentation, namespace=namespace, registry=registry, buckets=buckets
            )

        self.requests = counter(
            "requests",
            "Requests by authentication outcome, refusal reason and certificate source.",
            "outcome",
            "reason",
            "source",
        )
        self.denials = counter(
            "authorization_denials",
            "Requests refused by authorization, by reason and where the requirement applied.",
            "reason",
            "where",
        )
        self.validation = histogram(
            "validation_duration_seconds",
            "Time to decode, validate and map a certificate met for the first time "
            "(cache misses only).",
            VALIDATION_BUCKETS,
        )
        self.cache_entries = Gauge(
            "cache_entries",
            "Verification outcomes held in the cache.",
            namespace=namespace,
            registry=registry,
        )
        self.expiry = histogram(
            "client_certificate_expiry_seconds",
            "Time left until notAfter of accepted client certificates, when validated.",
            EXPIRY_BUCKETS,
        )
        self.expiring = counter(
            "client_certificates_expiring",
            "Client certificates seen within the expiry warning window (once each).",
        )
        self.would_deny = counter(
            "would_deny",
            "Requests a dry-run requirement, policy or deny_by_default would have refused.",
            "reason",
            "where",
        )
        self.trust_reloads = counter(
            "trust_reloads",
            "Trust material reloads that changed it (success) or failed (failure).",
            "outcome",
        )
        self.revocation_updates = counter(
            "revocation_updates",
            "Revocation data updates (success) and failed fetches (failure).",
            "kind",
            "outcome",
        )
        self.untrusted_headers = counter(
            "untrusted_headers",
            "Certificate headers dropped from untrusted peers (on_untrusted_header='ignore').",
            "source",
        )
        self.hook_failures = counter(
            "identity_hook_failures",
            "Identity hook calls that raised (error) or timed out (timeout).",
            "kind",
        )
        self._caches: list[Callable[[], int]] = []
        self.cache_entries.set_function(self._cache_size)
        # One child per label set, bound on first use: a hit costs a dict probe and inc().
        self._counts: dict[tuple[str, str, str], Callable[[], None]] = {}

    def __repr__(self) -> str:
        return "PrometheusListener()"

    def _cache_size(self) -> float:
        return float(sum(size() for size in self._caches))

    def _count(self, outcome: str, reason: str, source: str) -> None:
        key = (outcome, reason, source)
        increment = self._counts.get(key)
        if increment is None:
            increment = self._counts[key] = self.requests.labels(outcome, reason, source).inc
        increment()

    def __call__(self, event: kinds.Event | ValidationNotice) -> None:
        kind = type(event)
        if kind is kinds.Authenticated:
            assert isinstance(event, kinds.Authenticated)
            self._count("authenticated", "", event.identity.source)
        elif kind is kinds.Anonymous:
            self._count("anonymous", "", "")
        elif kind is kinds.Rejected:
            assert isinstance(event, kinds.Rejected)
            self._count("rejected", event.reason.value, event.source or "")
        elif kind is kinds.Forbidden:
            assert isinstance(event, kinds.Forbidden)
            self.denials.labels(event.reason.value, event.where).inc()
        elif kind is kinds.CertificateValidated:
            assert isinstance(event, kinds.CertificateValidated)
            self.validation.observe(event.seconds)
            # A server-verified name has no notAfter (issue #12): not in the histogram.
            if event.identity is not None and event.identity.certificate is not None:
                remaining = event.identity.not_after.timestamp() - time.time()
                self.expiry.observe(max(remaining, 0.0))
        elif kind is kinds.CertificateExpiring:
            self.expiring.inc()
        elif kind is kinds.WouldDeny:
            assert isinstance(event, kinds.WouldDeny)
            self.would_deny.labels(event.reason.value, event.where).inc()
        elif kind is kinds.UntrustedHeader:
            assert isinstance(event, kinds.UntrustedHeader)
            self.untrusted_headers.labels(event.source).inc()
        elif kind is kinds.IdentityHookFailed:
            assert isinstance(event, kinds.IdentityHookFailed)
            self.hook_failures.labels("timeout" if event.timed_out else "error").inc()
        elif kind is kinds.Configured:
            assert isinstance(event, kinds.Configured)
            self._watch_cache(event.cache_entries)
        elif kind is TrustReloaded:
            self.trust_reloads.labels("success").inc()
        elif kind is TrustReloadFailed:
            self.trust_reloads.labels("failure").inc()
        elif kind is RevocationUpdated:
            assert isinstance(event, RevocationUpdated)
            self.revocation_updates.labels(event.kind, "success").inc()
        elif kind is RevocationFetchFailed:
            assert isinstance(event, RevocationFetchFailed)
            fetched = "ocsp" if event.source.startswith("OCSP") else "crl"
            self.revocation_updates.labels(fetched, "failure").inc()

    def _watch_cache(self, size: Callable[[], int]) -> None:
        owner = getattr(size, "__self__", None)
        if owner is not None:
            reference = weakref.ref(owner)
            method = size.__func__  # type: ignore[attr-defined]

            def alive() -> int:
                cache = reference()
                return 0 if cache is None else int(method(cache))

            self._caches.append(alive)
        else:
            self._caches.append(size)
