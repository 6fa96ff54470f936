"""``asgi-mtls proxy-config nginx|haproxy|caddy|apache|envoy|traefik --cert ... --client-ca ...``

Print a working front-end configuration for the proxy: mutual TLS with the given certificate
files on ``--listen``, forwarding to ``--upstream`` with the client certificate in the header
the app's ``HeaderSource(<proxy>)`` reads (issue #11).  It is the configuration the end-to-end
tests run with the real proxy (:mod:`asgi_mtls.proxy_configs`, ``tests/e2e/test_proxies.py``),
rendered from the same templates.  File paths are made absolute (proxies resolve relative
paths each their own way).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from asgi_mtls.proxy_configs import PROXIES, ProxySettings, command, file_name, render

__all__ = ["add_parser", "run", "settings_from"]

#: The forward modes offered on the command line: the edge, and a sidecar behind an Envoy
#: that sanitizes.  The others let a client's own XFCC reach the app (docs/deploy/envoy.md).
SAFE_XFCC_MODES = ("SANITIZE_SET", "APPEND_FORWARD")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "proxy-config",
        help="print a tested front-end configuration for a proxy",
        description="Print the configuration of a proxy terminating mutual TLS in front of "
        "the app, the one the end-to-end tests run.",
    )
    parser.add_argument("proxy", choices=PROXIES)
    files = parser.add_argument_group("the proxy's side facing clients")
    files.add_argument(
        "--cert", required=True, help="server certificate (PEM); haproxy: with its key"
    )
    files.add_argument("--key", help="its private key (every proxy but haproxy)")
    files.add_argument(
        "--client-ca", required=True, help="CA certificates whose clients are accepted (PEM)"
    )
    files.add_argument("--listen", default="0.0.0.0:8443", help="HOST:PORT (default %(default)s)")
    files.add_argument(
        "--require-client-cert",
        action="store_true",
        help="refuse clients without a certificate in the handshake",
    )
    files.add_argument(
        "--forward-failed",
        action="store_true",
        help="nginx, apache, haproxy: forward certificates the proxy failed to verify, with "
        "its verdict (the app refuses them)",
    )
    app = parser.add_argument_group("the proxy's side facing the app")
    app.add_argument(
        "--upstream",
        default="http://127.0.0.1:8000",
        help="http://HOST:PORT, https://HOST:PORT (mutual TLS to the app) or unix:/PATH "
        "(nginx) (default %(default)s)",
    )
    app.add_argument("--upstream-cert", help="https upstream: the proxy's own certificate")
    app.add_argument("--upstream-key", help="its private key (nginx, caddy, envoy)")
    app.add_argument("--upstream-ca", help="https upstream: the CA of the app's certificate")
    app.add_argument(
        "--upstream-name",
        default="localhost",
        help="the name in the app's certificate (default %(default)s)",
    )
    specific = parser.add_argument_group("proxy-specific")
    specific.add_argument(
        "--state-dir",
        default="/var/lib/asgi-mtls-proxy",
        help="nginx, apache: an existing directory for the pid file, logs and temporary files "
        "(default %(default)s)",
    )
    specific.add_argument(
        "--xfcc-mode",
        choices=SAFE_XFCC_MODES,
        default="SANITIZE_SET",
        help="envoy: SANITIZE_SET at the edge, APPEND_FORWARD behind an Envoy that sanitizes",
    )
    specific.add_argument("--user", help="apache: USER:GROUP to run as when started as root")
    specific.add_argument(
        "--apache-modules",
        default="/usr/lib/apache2/modules",
        help="apache: the directory of its modules (default: Debian's, %(default)s)",
    )
    parser.add_argument(
        "-o", "--output", help="write to this file (and name it in the command line shown)"
    )
    parser.set_defaults(run=run)


def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(path)


def settings_from(args: argparse.Namespace) -> ProxySettings:
    user: tuple[str, str] | None = None
    if args.user is not None:
        name, sep, group = args.user.partition(":")
        if not sep or not name or not group:
            raise ValueError(f"--user {args.user!r}: give USER:GROUP")
        user = (name, group)
    return ProxySettings(
        cert=os.path.abspath(args.cert),
        key=_absolute(args.key),
        client_ca=os.path.abspath(args.client_ca),
        listen=args.listen,
        upstream=args.upstream,
        require_client_cert=args.require_client_cert,
        forward_failed=args.forward_failed,
        upstream_cert=_absolute(args.upstream_cert),
        upstream_key=_absolute(args.upstream_key),
        upstream_ca=_absolute(args.upstream_ca),
        upstream_name=args.upstream_name,
        state_dir=os.path.abspath(args.state_dir),
        xfcc_mode=args.xfcc_mode,
        user=user,
        apache_modules=args.apache_modules,
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    output = _absolute(args.output)
    text = render(args.proxy, settings, path=output)
    if output is None:
        sys.stdout.write(text)
        return 0
    Path(output).write_text(text)
    run_with = command(args.proxy, settings, output)
    print(f"wrote {output} ({file_name(args.proxy)}); run: {' '.join(run_with)}", file=sys.stderr)
    return 0
