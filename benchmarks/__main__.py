"""``python -m benchmarks``: run every part and write ``docs/benchmarks.md``.

``--smoke`` runs every part with tiny sizes (seconds), prints the table and writes nothing;
it exits non-zero only when something crashes, never because of a figure.  The end-to-end
part needs nginx; without it, it is skipped (and the page says so).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.driver import PartResult
from benchmarks.e2e import find_nginx, run_e2e
from benchmarks.hotpath import run_hotpath
from benchmarks.inprocess import run_inprocess
from benchmarks.memory import run_memory
from benchmarks.miss import run_misses
from benchmarks.pki import BenchPKI
from benchmarks.report import Results, render, summary_table

PARTS = ("inprocess", "miss", "e2e", "memory", "profile")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"

#: name: (default, smoke value, help)
SIZES: dict[str, tuple[int, int, str]] = {
    "rounds": (40, 2, "interleaved rounds of the in-process rows"),
    "requests": (4000, 20, "requests per variant per round, Starlette rows"),
    "fastapi_requests": (2000, 10, "requests per variant per round, FastAPI row"),
    "miss_rounds": (40, 2, "interleaved rounds of the miss rows"),
    "miss_per_round": (100, 3, "never-seen certificates per variant per round"),
    "e2e_rounds": (15, 1, "interleaved rounds of the end-to-end rows"),
    "e2e_requests": (15000, 100, "keep-alive requests per server per round"),
    "e2e_connections": (4, 2, "concurrent keep-alive connections of the load client"),
    "memory_valid": (100_000, 300, "distinct valid certificates of the memory run"),
    "memory_junk": (100_000, 300, "distinct junk values per memory flood"),
    "profile_requests": (20000, 50, "requests under cProfile per case"),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of issue #10; writes docs/benchmarks.md.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, every code path, a few seconds; print the table, write nothing",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated parts to run (default: all of {','.join(PARTS)})",
    )
    parser.add_argument("--output", type=Path, default=DOCS, help="the page to write")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the page")
    for name, (default, smoke, text) in SIZES.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=None,
            help=f"{text} (default {default}, smoke {smoke})",
        )
    args = parser.parse_args(argv)
    for name, (default, smoke, _) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else default)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    args.parts = parts
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.monotonic()

    def progress(part: str) -> Callable[[str], None]:
        def say(message: str) -> None:
            print(f"[{time.monotonic() - started:6.1f} s] {part}: {message}", file=sys.stderr)

        return say

    # Refusals are logged in production; here the lines would only bury the progress.
    logging.getLogger("asgi_mtls").addHandler(logging.NullHandler())
    logging.getLogger("asgi_mtls").propagate = False

    results = Results()
    pki = BenchPKI.ec()
    if "inprocess" in args.parts:
        progress("inprocess")("start")
        result: PartResult = asyncio.run(
            run_inprocess(
                pki,
                rounds=args.rounds,
                requests=args.requests,
                fastapi_requests=args.fastapi_requests,
                progress=progress("inprocess"),
            )
        )
        results.add("inprocess", result)
    if "miss" in args.parts:
        progress("miss")("start")
        results.add(
            "miss",
            asyncio.run(
                run_misses(
                    rounds=args.miss_rounds,
                    per_round=args.miss_per_round,
                    progress=progress("miss"),
                )
            ),
        )
    if "e2e" in args.parts:
        nginx = find_nginx()
        if nginx is None:
            results.skipped["end-to-end rows"] = "nginx is not installed"
            progress("e2e")("skipped: nginx is not installed")
        else:
            progress("e2e")("start")
            results.add(
                "e2e",
                run_e2e(
                    rounds=args.e2e_rounds,
                    requests=args.e2e_requests,
                    connections=args.e2e_connections,
                    nginx=nginx,
                    progress=progress("e2e"),
                ),
            )
    if "memory" in args.parts:
        results.memory = run_memory(
            valid=args.memory_valid, junk=args.memory_junk, progress=progress("memory")
        )
    if "profile" in args.parts:
        progress("profile")("start")
        results.profiles = asyncio.run(run_hotpath(pki, requests=args.profile_requests))

    counts = {"valid": f"{args.memory_valid:,}", "junk": f"{args.memory_junk:,}"}
    command = shlex.join(["python", "-m", "benchmarks", *argv])
    page = render(results, command=command, counts=counts, seconds=time.monotonic() - started)
    print(summary_table(results, counts))
    if args.smoke or args.no_write:
        return 0
    args.output.write_text(page)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
