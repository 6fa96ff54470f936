"""A local CRL and OCSP responder for tests: an HTTP server on 127.0.0.1 that publishes what
a :class:`~asgi_mtls.testing.CertificateAuthority` signs, and can hang, refuse or fail on
demand to test how revocation checking copes.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from asgi_mtls.testing.pki import CertificateAuthority

#: A route of :class:`RevocationServer`: request body (``b""`` for GET) -> response body.
Route = Callable[[bytes], bytes]


class RevocationServer:
    """A small HTTP server on 127.0.0.1 publishing CRLs and answering OCSP, for tests.

    ::

        with RevocationServer() as server:
            crl_url = server.serve_crl("/ca.crl", ca)      # a fresh ca.crl() per request
            ocsp_url = server.serve_ocsp("/ocsp", ca)      # ca.ocsp_response(request)
            client = ca.issue_client("alice", crl_urls=[crl_url], ocsp_urls=[ocsp_url])

    ``hang = True`` makes it accept connections and never answer (until stopped), to test
    timeouts; :meth:`refused_url` gives a URL where nothing listens.  ``requests`` records
    ``(method, path)`` of every request received.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str]] = []
        self.hang = False
        self.status = 200
        self._release = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, body: bytes) -> None:
                owner.requests.append((self.command, self.path))
                if owner.hang:
                    owner._release.wait(60)
                    self.close_connection = True
                    return
                route = owner.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    self.send_error(404)
                    return
                data = route(body)
                self.send_response(owner.status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self._answer(self.rfile.read(length))

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="asgi-mtls revocation server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self, path: str, route: Route) -> str:
        """Answer ``path`` with ``route(body)``; returns the full URL."""
        self.routes[path] = route
        return self.url + path

    def publish_crl(self, path: str, crl: x509.CertificateRevocationList | bytes) -> str:
        """Serve a fixed CRL (DER) at ``path``."""
        data = crl if isinstance(crl, bytes) else crl.public_bytes(serialization.Encoding.DER)
        return self.serve(path, lambda _: data)

    def serve_crl(self, path: str, ca: CertificateAuthority, **options: Any) -> str:
        """Serve ``ca.crl(**options)``, built afresh for every request (so it follows
        :meth:`CertificateAuthority.revoke`)."""
        return self.serve(
            path, lambda _: ca.crl(**options).public_bytes(serialization.Encoding.DER)
        )

    def serve_ocsp(self, path: str, ca: CertificateAuthority, **options: Any) -> str:
        """Answer OCSP POSTs at ``path`` with ``ca.ocsp_response(request, **options)``."""
        return self.serve(
            path,
            lambda body: ca.ocsp_response(body, **options).public_bytes(serialization.Encoding.DER),
        )

    @staticmethod
    def refused_url(path: str = "/") -> str:
        """A URL on 127.0.0.1 where (just now) nothing listens: connections are refused."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}{path}"

    def start(self) -> RevocationServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RevocationServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
