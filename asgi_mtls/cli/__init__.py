"""The ``asgi-mtls`` command: one module per subcommand, each with ``add_parser`` and ``run``.

``asgi-mtls check``  validate a certificate as the middleware would (:mod:`.check`);
``asgi-mtls routes`` audit an app's routes and who may call them (:mod:`.routes`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from asgi_mtls.cli import check, proxy_config, routes

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asgi-mtls", description="asgi-mtls tools")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in (check, routes, proxy_config):
        command.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except (OSError, ValueError) as exc:
        print(f"asgi-mtls: {exc}", file=sys.stderr)
        return 2
    return code
