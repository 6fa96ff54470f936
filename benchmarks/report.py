"""The rows of issue #10 with their targets, and the docs page that shows them.

:data:`ROWS` is the one list of what is measured and what it must reach; :func:`render` turns
the results of a run into ``docs/benchmarks.md`` (the whole page: table, context figures,
machine, command, method), so the page never says more than the run that wrote it.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import math
import os
import platform
import shutil
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.driver import PartResult, Ratio
from benchmarks.hotpath import Profile
from benchmarks.memory import PLATEAU_MIB, MemoryResult

__all__ = ["ROWS", "Results", "RowSpec", "machine", "render", "summary_table"]

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT_MIB = 64.0


@dataclass
class Results:
    """Everything one run measured (a part that did not run stays empty)."""

    ratios: dict[str, Ratio] = field(default_factory=dict)
    micros: dict[str, dict[str, float]] = field(default_factory=dict)  # part -> variant -> µs
    memory: dict[str, MemoryResult] = field(default_factory=dict)
    profiles: list[Profile] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # part -> why

    def add(self, part: str, result: PartResult) -> None:
        self.ratios.update(result.ratios)
        self.micros[part] = result.micros


@dataclass(frozen=True)
class RowSpec:
    """One row of the table: what is compared, issue #10's figure, and the target."""

    key: str
    case: str
    then: str
    target: str
    kind: str  # "throughput" (higher is better), "cost" (lower is better), "memory"
    met: Callable[[Results], bool | None]


def _measured(key: str, case: str, kind: str) -> RowSpec:
    """A row measured for context: no figure in issue #10, no target."""
    return RowSpec(key, case, "", "measured", kind, lambda r: None)


def _at_least(key: str, floor: float) -> Callable[[Results], bool | None]:
    return lambda r: r.ratios[key].median >= floor if key in r.ratios else None


def _at_most(key: str, ceiling: float) -> Callable[[Results], bool | None]:
    return lambda r: r.ratios[key].median <= ceiling if key in r.ratios else None


def _beats_starlette(r: Results) -> bool | None:
    if "tls_vs_bare" not in r.ratios or "starlette_auth_vs_bare" not in r.ratios:
        return None
    return r.ratios["tls_vs_bare"].median > r.ratios["starlette_auth_vs_bare"].median


def _bounded(case: str) -> Callable[[Results], bool | None]:
    def met(r: Results) -> bool | None:
        result = r.memory.get(case)
        if result is None:
            return None
        return result.peak_growth <= MEMORY_LIMIT_MIB and result.plateaus

    return met


ROWS: tuple[RowSpec, ...] = (
    RowSpec(
        "tls_vs_bare",
        "Starlette app, cached identity from the tls extension, vs the same app bare",
        "0.57",
        "≥ 0.93",
        "throughput",
        _at_least("tls_vs_bare", 0.93),
    ),
    RowSpec(
        "tls_vs_passthrough",
        "same, vs the app behind a no-op pure ASGI middleware",
        "0.58",
        "≥ 0.97",
        "throughput",
        _at_least("tls_vs_passthrough", 0.97),
    ),
    _measured(
        "floor_vs_bare",
        "the floor: a middleware that adds one identity's scope keys, computed once, to a copy "
        "of the scope, without looking at the request (the least any identity middleware "
        "costs), vs bare",
        "throughput",
    ),
    _measured(
        "floor_vs_passthrough",
        "the floor vs the app behind a no-op pure ASGI middleware",
        "throughput",
    ),
    RowSpec(
        "starlette_auth_vs_bare",
        "Starlette's own `AuthenticationMiddleware` with a trivial backend, vs bare "
        "(for comparison)",
        "0.89",
        "first row beats it",
        "throughput",
        _beats_starlette,
    ),
    RowSpec(
        "nginx_vs_bare",
        "cached identity from nginx's header (trusted proxy) vs bare",
        "0.47",
        "≥ 0.90",
        "throughput",
        _at_least("nginx_vs_bare", 0.90),
    ),
    _measured(
        "tls_proxied_vs_bare",
        "first row's requests, the middleware configured with a trusted proxy as well (the "
        "proxy's header is looked for on every request)",
        "throughput",
    ),
    RowSpec(
        "require_vs_trivial",
        "`@require_client` route vs a trivial decorator of the same shape",
        "0.93",
        "≥ 0.98",
        "throughput",
        _at_least("require_vs_trivial", 0.98),
    ),
    RowSpec(
        "fastapi_require_vs_trivial",
        "FastAPI, `Depends(require_client(...))` vs a trivial dependency of the same shape",
        "0.95",
        "≥ 0.98",
        "throughput",
        _at_least("fastapi_require_vs_trivial", 0.98),
    ),
    RowSpec(
        "anonymous_vs_bare",
        "anonymous request on a public route vs bare",
        "0.70",
        "≥ 0.97",
        "throughput",
        _at_least("anonymous_vs_bare", 0.97),
    ),
    _measured(
        "floor_anonymous_vs_bare",
        "the floor for an anonymous request (the anonymous scope keys added to a copy of the "
        "scope) vs bare",
        "throughput",
    ),
    RowSpec(
        "log_listener_vs_none",
        "issue #13: the default log listener vs `listeners=[]`, cached identity from the tls "
        "extension (it takes no per-request event)",
        "",
        "≥ 0.97",
        "throughput",
        _at_least("log_listener_vs_none", 0.97),
    ),
    _measured(
        "prometheus_vs_log_listener",
        "issue #13: `PrometheusListener` added beside the log listener, same requests "
        "(counted per request)",
        "throughput",
    ),
    _measured(
        "prometheus_vs_bare",
        "same app with the Prometheus listener vs the app bare",
        "throughput",
    ),
    RowSpec(
        "miss_ec",
        "never-seen certificate (EC P-256 leaf + intermediate) vs cryptography's own PEM load "
        "+ `ClientVerifier.verify`",
        "2.41x",
        "≤ 1.10x",
        "cost",
        _at_most("miss_ec", 1.10),
    ),
    RowSpec(
        "miss_rsa",
        "same, RSA-2048",
        "3.64x",
        "≤ 1.10x",
        "cost",
        _at_most("miss_rsa", 1.10),
    ),
    RowSpec(
        "cpu_tls",
        "real uvicorn, keep-alive, CPU seconds per request, middleware + protocol classes vs "
        "stock uvicorn: uvicorn terminating TLS",
        "1.53",
        "≤ 1.03x",
        "cost",
        _at_most("cpu_tls", 1.03),
    ),
    RowSpec(
        "cpu_nginx",
        "same, behind nginx",
        "1.42",
        "≤ 1.03x",
        "cost",
        _at_most("cpu_nginx", 1.03),
    ),
    _measured(
        "cpu_protocols_tls",
        "the protocol classes' part: `asgi_mtls.uvicorn` around the bare app vs stock uvicorn, "
        "uvicorn terminating TLS",
        "cost",
    ),
    _measured(
        "cpu_protocols_nginx",
        "same, behind nginx",
        "cost",
    ),
    _measured(
        "cpu_floor_tls",
        "the floor in the same server: `asgi_mtls.uvicorn` and a middleware adding the client's "
        "scope keys without looking at the request, vs stock uvicorn, uvicorn terminating TLS",
        "cost",
    ),
    _measured(
        "cpu_floor_nginx",
        "same, behind nginx",
        "cost",
    ),
    _measured(
        "user_over_floor_tls",
        "user CPU alone (no kernel time) per request, the middleware's server over the floor "
        "server: what finding the client costs in a real server, uvicorn terminating TLS",
        "cost",
    ),
    _measured(
        "user_over_floor_nginx",
        "same, behind nginx",
        "cost",
    ),
    RowSpec(
        "valid",
        "RSS growth, {valid} distinct valid certificates, default config",
        "+48 MiB, bounded",
        f"≤ {MEMORY_LIMIT_MIB:.0f} MiB, plateaus",
        "memory",
        _bounded("valid"),
    ),
    RowSpec(
        "self_signed",
        "same, junk flood: {junk} distinct self-signed certificates",
        "",
        f"≤ {MEMORY_LIMIT_MIB:.0f} MiB, plateaus",
        "memory",
        _bounded("self_signed"),
    ),
    RowSpec(
        "large_headers",
        "same, junk flood: {junk} distinct 30 kB header values from the trusted proxy",
        "",
        f"≤ {MEMORY_LIMIT_MIB:.0f} MiB, plateaus",
        "memory",
        _bounded("large_headers"),
    ),
)


def _ratio_text(ratio: Ratio, kind: str) -> tuple[str, str]:
    suffix = "x" if kind == "cost" else ""
    if math.isnan(ratio.median):
        return "n/a", ""
    return (
        f"{ratio.median:.2f}{suffix}",
        f"{ratio.p10:.2f}{suffix} - {ratio.p90:.2f}{suffix}",
    )


def _row_cells(spec: RowSpec, results: Results) -> tuple[str, str]:
    if spec.kind == "memory":
        memory = results.memory.get(spec.key)
        if memory is None:
            return "not run", ""
        flat = "plateaus" if memory.plateaus else "still growing"
        return (
            f"+{memory.growth:.1f} MiB, {flat}",
            f"peak +{memory.peak_growth:.1f}; 2nd half +{memory.second_half_growth:.1f}",
        )
    ratio = results.ratios.get(spec.key)
    if ratio is None:
        return "not run", ""
    return _ratio_text(ratio, spec.kind)


def summary_table(results: Results, counts: dict[str, str]) -> str:
    """The table of every row: the figure now, its spread, the target, met or not."""
    lines = [
        "| case | #10 figure | now (median) | spread (p10 - p90) | target | met |",
        "|---|---:|---:|---:|---|:-:|",
    ]
    for spec in ROWS:
        now, spread = _row_cells(spec, results)
        met = spec.met(results)
        mark = "n/a" if met is None else ("yes" if met else "**no**")
        case = spec.case.format(**counts)
        lines.append(f"| {case} | {spec.then} | {now} | {spread} | {spec.target} | {mark} |")
    return "\n".join(lines)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _command_output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if done.returncode != 0:
        return "?"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def machine() -> list[str]:
    """What the figures were measured on, one line each."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                model,
            )
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from cryptography.hazmat.backends.openssl import backend

    libraries = ", ".join(
        f"{name} {_version(name)}"
        for name in ("asgi-mtls", "starlette", "fastapi", "pydantic", "cryptography", "uvicorn")
    )
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    nginx_version = _command_output([nginx, "-v"]) if nginx else "not installed"
    commit = _command_output(["git", "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "status", "--porcelain", "--untracked-files=no"])
    library = _command_output(["git", "log", "-1", "--format=%h %s", "--", "asgi_mtls"])[:72]
    return [
        f"- Machine: {usable} usable cores ({os.cpu_count()} online), {model}, "
        f"{platform.system()} {platform.release()} {platform.machine()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"asyncio event loop",
        f"- {libraries}, httptools {_version('httptools')}",
        f"- {backend.openssl_version_text()} (cryptography), {ssl.OPENSSL_VERSION} (Python ssl), "
        f"{nginx_version.replace('nginx version: ', '')}",
        f"- Code: commit {commit}{' with uncommitted changes' if dirty not in ('', '?') else ''}"
        f" (`asgi_mtls/` as of {library})",
    ]


def _micro_section(results: Results) -> list[str]:
    if not results.micros:
        return []
    lines = [
        "### Absolute figures (context, not targets)",
        "",
        "Medians over the rounds.  They drift with the machine's load; the ratios above "
        "are what to compare.",
        "",
        "| part | variant | median |",
        "|---|---|---:|",
    ]
    units = {"inprocess": "µs / request", "miss": "µs / certificate", "e2e": "µs CPU / request"}
    for part, micros in results.micros.items():
        for variant, value in micros.items():
            lines.append(f"| {part} | `{variant}` | {value:.2f} {units.get(part, 'µs')} |")
    return [*lines, ""]


def _memory_section(results: Results) -> list[str]:
    if not results.memory:
        return []
    lines = [
        "### Memory samples",
        "",
        "RSS in MiB after each share of the run (first column: requests served; the first "
        "sample is after one warm request).",
        "",
    ]
    for case, result in results.memory.items():
        samples = ", ".join(f"{served}: {mib:.1f}" for served, mib in result.samples)
        lines.append(f"- `{case}`: {samples}")
    return [*lines, ""]


def _profile_section(results: Results) -> list[str]:
    if not results.profiles:
        return []
    lines = ["### Where a cached request's time goes", ""]
    base = results.micros.get("inprocess", {})
    added = {
        "tls extension, cached": ("mtls/tls", "bare/tls"),
        "nginx header, cached": ("mtls/nginx", "bare/nginx"),
    }
    for profile in results.profiles:
        variant, bare = added.get(profile.case, ("", ""))
        real = ""
        if variant in base and bare in base:
            real = (
                f"; without the profiler the middleware adds "
                f"{base[variant] - base[bare]:.1f} µs to a {base[bare]:.1f} µs request"
            )
        lines += [
            f"**{profile.case}** ({profile.requests} requests under cProfile: "
            f"{profile.request_us:.1f} µs per request, {profile.middleware_us:.1f} µs of it in "
            f"asgi_mtls code and the C calls it makes{real}).  Top functions by own time:",
            "",
            "| function | calls / request | own µs / request | share | with callees µs |",
            "|---|---:|---:|---:|---:|",
        ]
        for spot in profile.spots[:15]:
            share = spot.own_us / profile.middleware_us * 100 if profile.middleware_us else 0
            lines.append(
                f"| `{spot.name}` | {spot.calls:.1f} | {spot.own_us:.2f} | {share:.0f}% "
                f"| {spot.total_us:.2f} |"
            )
        lines.append("")
    return lines


METHOD = """\
## Method

Every figure is a ratio of variants measured side by side in one run, interleaved round by
round (the order rotates each round, one untimed round first, the collector runs before every
batch outside the timed region), reported as the median of the per-round ratios with the 10th
and 90th percentiles as its spread.  The machine is shared and absolute times drift; variants
measured within the same round drift together.  Time is CPU time throughout: of the
benchmark process in process (`time.process_time`; the work is single-threaded and never
waits), of the uvicorn process end to end; a wall clock would charge a variant for the moments
another process held the core.  Throughput ratios (the in-process rows) are requests per
second of the variant over the baseline: 1.00 is free.  Cost ratios (misses, CPU) are time of
the variant over the baseline: 1.00 is as cheap.

- **In process** (`benchmarks/inprocess.py`): ASGI apps called directly (a scope,
  `receive`, `send`; no sockets, no HTTP client), a Starlette and a FastAPI service of a few
  routes written as users write them (`benchmarks/apps.py`).  Both sides of a ratio are the
  same app and serve the same scopes; only the middleware (or the guard on the payments
  route) differs.  Scopes are made untimed, 16 at a time, just before they are served (a
  server builds each scope right before it calls the app; thousands made ahead would sit
  outside the CPU caches and charge whoever reads a header first).  The certificate arrives
  as `asgi_mtls.uvicorn` delivers it (the `tls` extension and `asgi_mtls.peer`, per-request
  copies of the connection's dict, and the connection's memo) with the middleware configured
  as docs/deploy/uvicorn.md does (no trusted proxy), or as nginx forwards it
  (`X-SSL-Client-Cert` on a kept-alive upstream connection from 127.0.0.1) with
  `trusted_proxies=["127.0.0.1"]` as docs/deploy/nginx.md does.  The floor rows add one
  identity's scope keys, computed once, to a copy of the scope and do nothing else: no
  identity middleware can cost less.  Before timing, every
  app's answers are checked (the protected route admits the client, refuses an anonymous
  one); after timing, the middleware must have validated each certificate once, so the
  rounds measured the cache hit.  The trivial decorator and dependency have
  `require_client`'s shape and read the identity, so their ratio is the requirement's own
  cost.
- **Misses** (`benchmarks/miss.py`): the middleware's resolver meeting a certificate it has
  never seen (find, cache miss, decode the PEMs, validate, build the identity, cache the
  outcome) against the least any implementation must do with the same input: cryptography's
  `load_pem_x509_certificate` of leaf and intermediate and
  `PolicyBuilder().store(root).build_client_verifier().verify(leaf, [intermediate])`.  The
  certificates are issued before each timed batch, distinct for every call.
- **End to end** (`benchmarks/e2e.py`, `benchmarks/serve.py`): eight uvicorn processes (stock
  uvicorn with the bare app; `asgi_mtls.uvicorn` with the app behind the middleware;
  `asgi_mtls.uvicorn` with the bare app, the protocol classes' part alone;
  `asgi_mtls.uvicorn` with the app behind a middleware adding the client's scope keys without
  looking at the request, the floor of any identity middleware in that server; each
  terminating TLS with a client certificate, and each on plain HTTP behind one nginx that
  terminates mutual TLS with the shipped `asgi-mtls-proxy.conf` and keeps upstream
  connections alive), httptools, no access log.  The figure is the ratio of the uvicorn
  process's CPU seconds (`utime + stime` from `/proc/PID/stat`) per keep-alive request; the
  two user-CPU rows take `utime` alone, the middleware's server over the floor server (the
  kernel's socket work is the same for both and moves with the load on the two cores).  The
  load comes from a keep-alive client on `http.client` (a few connections in threads,
  presenting the client certificate): `ab` speaks HTTP/1.0 and uvicorn closes HTTP/1.0
  connections after every response, so `ab` would measure a TLS handshake per request.
- **Memory** (`benchmarks/memory.py`): one fresh process per case drives the app in process
  with distinct certificates or header values, made in small chunks as it goes, and samples
  `VmRSS` after a collection.  Growth is the last sample over the first; a run plateaus
  when its second half added at most {plateau} MiB; the target holds when the peak growth
  is within {limit} MiB and the run plateaus.
- **Profile** (`benchmarks/hotpath.py`): cProfile over the cached hit path (its own clock,
  the wall clock); the table keeps asgi_mtls functions and the C functions they call.
  cProfile inflates small calls, so the shares say where to look, not what it costs.
"""


def render(results: Results, *, command: str, counts: dict[str, str], seconds: float) -> str:
    """The whole ``docs/benchmarks.md``."""
    judged = [spec.met(results) for spec in ROWS]
    met = sum(1 for m in judged if m)
    measured = sum(1 for m in judged if m is not None)
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    skipped = [f"- {part} not run: {why}" for part, why in results.skipped.items()]
    lines = [
        "# Benchmarks",
        "",
        "What asgi-mtls costs a real service, against the targets of issue #10: an "
        "authentication layer that takes a visible share of a service's throughput gets "
        "ripped out.  This page is generated; regenerate it with the command below (five to "
        "ten minutes on two cores), or check that every code path still runs with "
        "`python -m benchmarks --smoke` (seconds; writes nothing).",
        "",
        "## Results",
        "",
        f"Run of {today}, {seconds / 60:.1f} minutes:",
        "",
        "```sh",
        command,
        "```",
        "",
        *machine(),
        "",
        summary_table(results, counts),
        "",
        f"Targets met: {met} of {measured} measured rows.  Spread: the 10th and 90th "
        "percentiles of the per-round figure.  #10 figure: the independent measurement "
        "quoted in issue #10, taken before this benchmark existed (another app and method: "
        "for scale, not for comparison).",
        "",
    ]
    direct = results.ratios.get("tls_vs_starlette_auth")
    if direct is not None:
        now, spread = _ratio_text(direct, "throughput")
        lines += [
            f"Measured directly, the first row's app over the app behind Starlette's "
            f"`AuthenticationMiddleware`: {now} ({spread}); above 1.00 beats it.",
            "",
        ]
    if skipped:
        lines += [*skipped, ""]
    lines += _micro_section(results) + _memory_section(results) + _profile_section(results)
    lines.append(METHOD.format(plateau=PLATEAU_MIB, limit=MEMORY_LIMIT_MIB))
    return "\n".join(lines).rstrip() + "\n"
