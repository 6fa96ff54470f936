"""``python -m example_app``: serve the demo with real mutual TLS.

Options: ``--behind-proxy`` serves plain HTTP for nginx (see ``example_app/nginx``);
``--self-test`` starts the server, calls it as each demo client would, and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import sys
import threading
import time
from pathlib import Path

import asgi_mtls.uvicorn as mtls_uvicorn

from .app import create_app
from .pki import DevPKI, ensure_dev_pki

DEFAULT_PKI_DIR = Path(__file__).resolve().parent / ".pki"


def curl_examples(pki: DevPKI, base: str, *, behind_proxy: bool = False) -> str:
    def curl(client: str | None, path: str, method: str = "GET") -> str:
        parts = ["curl", "--cacert", str(pki.ca)]
        if client:
            cert, key = pki.client(client)
            parts += ["--cert", str(cert), "--key", str(key)]
        if method != "GET":
            parts += ["-X", method]
        return " ".join([*parts, f"{base}{path}"])

    lines = [
        "Try it (in another terminal):",
        "  # public route, no certificate",
        "  " + curl(None, "/health"),
        "  # who am I? (the payments service's certificate)",
        "  " + curl("payments", "/whoami"),
        "  # no certificate on a protected route: 401 missing",
        "  " + curl(None, "/whoami"),
        "  # the reports service may not pay: 403 forbidden",
        "  " + curl("reports", "/payments", "POST"),
        "  " + curl("payments", "/payments", "POST"),
        (
            "  # a certificate from another CA: nginx answers 400 itself"
            if behind_proxy
            else "  # a certificate from another CA: the TLS handshake fails"
        ),
        "  " + curl("untrusted", "/whoami"),
    ]
    return "\n".join(lines)


def self_test(pki: DevPKI) -> int:
    """Serve on a free port, exercise every demo client, print the outcomes."""
    import httpx
    import uvicorn
    from websockets.asyncio.client import connect

    app = create_app(pki.ca)
    config = mtls_uvicorn.config(
        app,
        port=0,
        certfile=pki.server[0],
        keyfile=pki.server[1],
        client_ca=pki.client_ca_bundle,
        log_level="warning",
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            print("server failed to start", file=sys.stderr)
            return 1
        time.sleep(0.02)
    base = f"https://localhost:{port}"

    def context(client: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        if client:
            ctx.load_cert_chain(*pki.client(client))
        return ctx

    def call(client: str | None, method: str, path: str) -> tuple[int, object]:
        try:
            with httpx.Client(verify=context(client), timeout=10) as http:
                response = http.request(method, base + path)
        except httpx.HTTPError as exc:
            return 0, f"connection refused by TLS: {type(exc).__name__}"
        return response.status_code, response.json()

    checks = [
        ("no certificate, GET /health", call(None, "GET", "/health"), 200),
        ("payments, GET /whoami", call("payments", "GET", "/whoami"), 200),
        ("no certificate, GET /whoami", call(None, "GET", "/whoami"), 401),
        ("reports, POST /payments", call("reports", "POST", "/payments"), 403),
        ("payments, POST /payments", call("payments", "POST", "/payments"), 200),
        ("reports, GET /reports", call("reports", "GET", "/reports"), 200),
        ("untrusted CA, GET /whoami", call("untrusted", "GET", "/whoami"), 0),
    ]
    failures = 0
    for label, (status, body), expected in checks:
        ok = status == expected
        failures += not ok
        print(
            f"{'ok  ' if ok else 'FAIL'} {label}: {status or 'handshake failed'} {json.dumps(body)}"
        )

    async def websocket_session() -> tuple[object, object]:
        ws_url = base.replace("https://", "wss://") + "/ws"
        async with connect(ws_url, ssl=context("reports"), open_timeout=10) as ws:
            greeting = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await ws.send("ping")
            echo = json.loads(await asyncio.wait_for(ws.recv(), 10))
        return greeting, echo

    try:
        greeting, echo = asyncio.run(websocket_session())
        ok = greeting == {"hello": "spiffe://bank.example/reports"} and isinstance(echo, dict)
        ok = ok and isinstance(echo, dict) and echo.get("echo") == "ping"
    except Exception as exc:  # report, do not crash the self-test
        ok, greeting = False, repr(exc)
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} reports, WebSocket /ws: {json.dumps(greeting)}")
    server.should_exit = True
    thread.join(timeout=10)
    print("self-test passed" if not failures else f"self-test FAILED: {failures} check(s)")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_app", description=__doc__)
    parser.add_argument(
        "--pki-dir", type=Path, default=DEFAULT_PKI_DIR, help="where the dev PKI lives"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default 8443 (8000 behind a proxy)")
    parser.add_argument(
        "--behind-proxy", action="store_true", help="plain HTTP for nginx on 127.0.0.1"
    )
    parser.add_argument("--self-test", action="store_true", help="serve, call every route, exit")
    args = parser.parse_args(argv)

    pki = ensure_dev_pki(args.pki_dir)
    print(f"development PKI in {pki.directory} (generated locally; never use it in production)")
    if args.self_test:
        return self_test(pki)
    if args.behind_proxy:
        port = args.port or 8000
        app = create_app(pki.ca, trusted_proxies=["127.0.0.1", "::1"])
        print(
            f"serving plain HTTP on http://{args.host}:{port}"
            " for nginx (example_app/nginx/nginx.conf)"
        )
        print(curl_examples(pki, "https://localhost:8443", behind_proxy=True))
        mtls_uvicorn.run(
            app, host=args.host, port=port, certfile=None, keyfile=None, client_ca=None
        )
        return 0
    port = args.port or 8443
    print(curl_examples(pki, f"https://localhost:{port}"))
    mtls_uvicorn.run(
        create_app(pki.ca),
        host=args.host,
        port=port,
        certfile=pki.server[0],
        keyfile=pki.server[1],
        client_ca=pki.client_ca_bundle,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
