"""The ``asgi-mtls`` command: one module per subcommand, each with ``add_parser`` and ``run``.

``asgi-mtls check``    validate a certificate as the middleware would (:mod:`.check`);
``asgi-mtls inspect``  decode a certificate or a proxy's header value (:mod:`.inspect`);
``asgi-mtls pki``      make a development PKI (:mod:`.pki`);
``asgi-mtls routes``   audit an app's routes and who may call them (:mod:`.routes`);
``asgi-mtls serve``    run an app with uvicorn, TLS and client certificates (:mod:`.serve`).

Errors are one line on stderr (``asgi-mtls: ...``) and exit status 2, without a traceback;
usage errors likewise.  A closed pipe (``asgi-mtls routes ... | head``) ends the command
quietly with status 141, as for any Unix tool that SIGPIPE stops.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from asgi_mtls import __version__
from asgi_mtls.cli import check, inspect, pki, routes, serve

__all__ = ["main"]

#: Exit status of a command whose output pipe was closed (128 + SIGPIPE).
BROKEN_PIPE = 141


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, naming the subcommand and where to find help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="asgi-mtls", description="asgi-mtls tools")
    parser.add_argument("--version", action="version", version=f"asgi-mtls {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    for command in (check, inspect, pki, routes, serve):
        command.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (| head): say nothing, and keep the interpreter's own flush
        # at exit from failing on the same pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE
    except (OSError, ValueError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"asgi-mtls: {message}", file=sys.stderr)
        return 2
    return code
