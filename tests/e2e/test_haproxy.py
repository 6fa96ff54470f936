"""What is specific to HAProxy; the tests every proxy passes are in ``test_proxies.py``.

HAProxy forwards the chain the client sent (``%[ssl_c_chain_der,base64]``), which lets an app
that knows only the root build the path; and its configuration must delete the certificate
headers before setting them, or a client without a certificate keeps its own.
"""

from __future__ import annotations

import pytest

from tests.apps import PAYMENTS

from .conftest import PKIFiles
from .proxies import client, free_port, proxy_app, serve_upstream, spec, start_proxy

pytestmark = pytest.mark.e2e

HAPROXY = spec("haproxy")


def test_forwarded_chain_lets_the_app_build_the_path(pki, pki_files: PKIFiles, tmp_path):
    # The app knows only the root; the intermediate arrives in the chain header, as a
    # path-building hint (never as a trust anchor).
    with serve_upstream(proxy_app(pki, HAPROXY.source(), intermediates=False)) as upstream:
        settings = HAPROXY.settings(pki_files, tmp_path, free_port(), upstream)
        with (
            start_proxy(HAPROXY, settings, tmp_path) as url,
            client(pki_files, pki.payments) as http,
        ):
            body = http.get(url + "/whoami").json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256


def _without_del_header(config: str) -> str:
    kept = [
        line
        for line in config.splitlines()
        if not line.strip().startswith("http-request del-header")
    ]
    assert len(kept) == len(config.splitlines()) - 3
    return "\n".join(kept) + "\n"


def test_without_del_header_haproxy_forwards_the_clients_own_header(
    pki, pki_files: PKIFiles, tmp_path
):
    # Why the configuration deletes first: with `set-header ... if { ssl_c_used }` alone, a
    # client without a certificate keeps its own header and becomes whoever it claims to be.
    forged = HAPROXY.sent(pki.payments)
    with serve_upstream(proxy_app(pki, HAPROXY.source())) as upstream:
        settings = HAPROXY.settings(pki_files, tmp_path, free_port(), upstream)
        with (
            start_proxy(HAPROXY, settings, tmp_path, edit=_without_del_header) as url,
            client(pki_files) as http,
        ):
            body = http.get(url + "/whoami", headers=forged).json()
    assert body["principal"] == PAYMENTS
