"""``asgi-mtls serve MODULE:APP --ca CA --cert CERT --key KEY [--require] [--host] [--port]
[--workers N]``

Run uvicorn the way asgi-mtls needs it, so that none of the flags can be forgotten: TLS with
``--cert``/``--key``, client certificates requested (``--require``: required in the
handshake) and verified against ``--ca``, and :mod:`asgi_mtls.uvicorn`'s protocol classes so
that the app sees the certificate and the transport peer.  Built on
:func:`asgi_mtls.uvicorn.config`.

Everything is checked before a port is opened, each problem in one line naming the option:
the CA file (it must hold a CA certificate), the server certificate and key (they must load
together), the app (it must import).  A misconfigured middleware then fails the app's
lifespan startup (:mod:`asgi_mtls.startup`): uvicorn logs the line and the command exits
with uvicorn's status 3.
"""

from __future__ import annotations

import argparse
import os
import ssl
from typing import Any, Final

from asgi_mtls.cli.routes import add_app_arguments, load_app
from asgi_mtls.errors import ConfigurationError
from asgi_mtls.validation import load_certificates
from asgi_mtls.validation.trust_checks import check_trust_roots

__all__ = ["add_parser", "check_tls_files", "run"]

#: uvicorn's exit status when the app (or the socket) fails at startup.
STARTUP_FAILURE = 3


def add_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="run an app with uvicorn, TLS and client certificates"
    )
    add_app_arguments(serve)
    serve.add_argument(
        "--ca", required=True, help="PEM file of the CA(s) that issue client certificates"
    )
    serve.add_argument("--cert", required=True, help="the server's certificate (PEM)")
    serve.add_argument("--key", required=True, help="the server's private key (PEM)")
    serve.add_argument(
        "--require",
        action="store_true",
        help="refuse clients without a certificate in the TLS handshake",
    )
    uvicorn = serve.add_argument_group("uvicorn's own options, passed on under their names")
    uvicorn.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    uvicorn.add_argument("--port", type=int, default=8443, help="port (default: 8443)")
    uvicorn.add_argument("--workers", type=int, default=1, help="processes (default: 1)")
    uvicorn.add_argument("--root-path", default="", help="uvicorn's --root-path")
    uvicorn.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's log level (default: info)",
    )
    serve.set_defaults(run=run)


#: The options above that are uvicorn's own: ``uvicorn.Config`` takes them under these names.
_UVICORN_OPTIONS: Final = ("host", "port", "workers", "root_path", "log_level")


def check_tls_files(ca: str, cert: str, key: str) -> None:
    """:class:`ConfigurationError` (one line, naming the option) unless ``ca`` holds a CA
    certificate and ``cert`` and ``key`` load together as the server's credentials."""
    check_trust_roots(load_certificates(ca, "--ca"), f"--ca file {ca!r}")
    for option, path in (("--cert", cert), ("--key", key)):
        if not os.path.isfile(path):
            raise ConfigurationError(f"{option} file {path!r} does not exist")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        reason = " ".join(str(getattr(exc, "reason", None) or exc).split())
        raise ConfigurationError(
            f"--cert {cert!r} and --key {key!r} do not load as a certificate and its private "
            f"key ({reason}): give the server certificate (PEM) and the key that belongs to it"
        ) from None


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
        from uvicorn.supervisors import Multiprocess

        from asgi_mtls import uvicorn as mtls_uvicorn
    except ImportError as exc:
        raise ConfigurationError(
            f"asgi-mtls serve needs uvicorn ({exc}): pip install 'asgi-mtls[uvicorn]'"
        ) from None
    if args.workers < 1:
        raise ConfigurationError(f"--workers {args.workers}: give 1 or more")
    check_tls_files(args.ca, args.cert, args.key)
    app: Any = load_app(args.app, factory=args.factory, app_dir=args.app_dir)
    config = mtls_uvicorn.config(
        # One process serves the app loaded above; workers import it by name (and call it).
        app if args.workers == 1 else args.app,
        factory=args.factory and args.workers > 1,
        certfile=args.cert,
        keyfile=args.key,
        client_ca=args.ca,
        require_client_cert=args.require,
        **{name: getattr(args, name) for name in _UVICORN_OPTIONS},
    )
    server = uvicorn.Server(config)
    try:
        if args.workers == 1:
            server.run()
            return 0 if server.started else STARTUP_FAILURE
        supervisor = Multiprocess(config, sockets=[config.bind_socket()])
        supervisor.run()
    except SystemExit as exc:  # uvicorn's own exit at startup: its log said why
        return exc.code if isinstance(exc.code, int) else STARTUP_FAILURE
    except KeyboardInterrupt:
        return 0
    failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
    return STARTUP_FAILURE if failed else 0
