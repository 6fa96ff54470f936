"""One uvicorn server of the end-to-end run, in its own process (so its CPU time is its own).

    python -m benchmarks.serve {stock,protocols,floor,mtls} {tls,proxy} PORT PKI_DIR

``stock``: uvicorn's own protocol classes serving the bare Starlette app of
:mod:`benchmarks.apps`.  ``mtls``: the same app behind ``MTLSMiddleware``, served with the
``asgi_mtls.uvicorn`` protocol classes (:func:`asgi_mtls.uvicorn.config`); ``protocols``:
the bare app with those protocol classes, to tell their cost from the middleware's;
``floor``: those protocol classes and :class:`~benchmarks.apps.FixedAdditions` (the repeat
client's scope keys added to a copy of every scope, without looking at the request), the
least any identity middleware costs in the same server.
``tls``: uvicorn terminates TLS and asks for a client certificate (``CERT_OPTIONAL``,
verified against the client CA bundle, for every variant alike); ``proxy``: plain HTTP behind
nginx, uvicorn's default proxy-header handling.  Every variant uses httptools, no access log,
the default loop.
"""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path
from typing import Any

import uvicorn
from starlette.middleware import Middleware

import asgi_mtls.uvicorn as mtls_uvicorn
from asgi_mtls import MTLSMiddleware
from asgi_mtls.inject import scope_additions
from benchmarks import apps

__all__ = ["build_config"]

COMMON: dict[str, Any] = {"http": "httptools", "access_log": False, "log_level": "warning"}


def _additions(pki: Path) -> dict[str, Any]:
    """The scope keys ``MTLSMiddleware`` adds for the repeat client (whose certificate opens
    ``client-bundle.pem``), resolved once by a middleware configured as the others."""
    client = (pki / "client-bundle.pem").read_text()
    end = "-----END CERTIFICATE-----"
    leaf = client[: client.index(end) + len(end)] + "\n"
    middleware = MTLSMiddleware(
        apps.starlette_app(), trust=pki / "root-ca.pem", intermediates=pki / "intermediate.pem"
    )
    extension = {"client_cert_chain": [leaf], "client_cert_error": None}
    identity = middleware.resolver.resolve({"type": "http", "extensions": {"tls": extension}})
    if identity is None:
        raise RuntimeError("the repeat client was not identified")
    return dict(scope_additions(identity))


def build_config(variant: str, mode: str, port: int, pki: Path) -> uvicorn.Config:
    """The uvicorn configuration of one end-to-end server."""
    tls = mode == "tls"
    files = {
        "certfile": pki / "server.pem",
        "keyfile": pki / "server.key",
        "client_ca": pki / "client-ca-bundle.pem",
    }
    if variant == "stock":
        ssl_options: dict[str, Any] = {}
        if tls:
            ssl_options = {
                "ssl_certfile": str(files["certfile"]),
                "ssl_keyfile": str(files["keyfile"]),
                "ssl_ca_certs": str(files["client_ca"]),
                "ssl_cert_reqs": ssl.CERT_OPTIONAL,
            }
        return uvicorn.Config(
            apps.starlette_app(), host="127.0.0.1", port=port, **ssl_options, **COMMON
        )
    # As each deployment guide configures it: behind nginx, 127.0.0.1 is the trusted proxy.
    middleware = apps.mtls_middleware(pki / "root-ca.pem", pki / "intermediate.pem", proxy=not tls)
    # "protocols": asgi_mtls.uvicorn's protocol classes around the bare app (what they cost
    # alone); "floor": with fixed scope additions; "mtls": the app behind the middleware.
    if variant == "protocols":
        app = apps.starlette_app()
    elif variant == "floor":
        app = apps.starlette_app([Middleware(apps.FixedAdditions, additions=_additions(pki))])
    else:
        app = apps.starlette_app([middleware])
    return mtls_uvicorn.config(
        app,
        host="127.0.0.1",
        port=port,
        certfile=files["certfile"] if tls else None,
        keyfile=files["keyfile"] if tls else None,
        client_ca=files["client_ca"] if tls else None,
        **COMMON,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=["stock", "protocols", "floor", "mtls"])
    parser.add_argument("mode", choices=["tls", "proxy"])
    parser.add_argument("port", type=int)
    parser.add_argument("pki", type=Path)
    args = parser.parse_args()
    uvicorn.Server(build_config(args.variant, args.mode, args.port, args.pki)).run()


if __name__ == "__main__":
    main()
