"""End to end: real uvicorn processes, real TLS, real nginx; CPU seconds per request.

Eight uvicorn servers run side by side (:mod:`benchmarks.serve`), each in its own process:
stock uvicorn serving the bare Starlette app, ``asgi_mtls.uvicorn`` serving it behind
``MTLSMiddleware``, ``asgi_mtls.uvicorn`` serving the bare app (the protocol classes' part
alone), and ``asgi_mtls.uvicorn`` serving it behind a middleware that adds the client's scope
keys without looking at the request (the floor of any identity middleware in that server),
(a) terminating TLS with a client certificate themselves and (b) on plain
HTTP behind one nginx that terminates mutual TLS and forwards ``$ssl_client_escaped_cert``
with the snippet the docs ship (``example_app/nginx/asgi-mtls-proxy.conf``, included
verbatim).  nginx keeps its upstream connections alive (``upstream { keepalive }``, and the
``$connection_upgrade`` map yields no ``Connection`` header for plain requests), as any
production nginx in front of an app server does.

Each round sends the same number of keep-alive requests to each server in turn (order rotated
per round) and reads the server process's CPU time (``utime + stime`` of ``/proc/PID/stat``)
before and after: the figure is the median over rounds of the per-round ratio of CPU seconds
per request, asgi-mtls over stock.  Only the uvicorn process is measured: nginx and the
client cost the same whichever server they talk to.  The user time alone (``utime``) is kept
too: the middleware's server over the floor server in user time is what finding the client
costs in a real server, without the kernel's socket work, which moves with what else the two
cores are doing.

The load generator is a small keep-alive client on the standard library
(``http.client`` over ``ssl``, a few concurrent connections in threads, each presenting the
client certificate), not ``ab``: ab speaks HTTP/1.0 and uvicorn closes every HTTP/1.0
connection after one response, so ab against uvicorn measures a TLS handshake per request,
not the keep-alive traffic this row is about.  The client refuses to count a response that
closes its connection, or any status but 200.
"""

from __future__ import annotations

import http.client
import os
import shutil
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.driver import PartResult
from benchmarks.pki import BenchPKI, PKIFiles
from tests.e2e.proxies import free_port, run_foreground

__all__ = ["find_nginx", "run_e2e"]

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "example_app" / "nginx" / "asgi-mtls-proxy.conf"
PATH = "/accounts/42"
PROTECTED = "/payments/7"

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    keepalive_requests 1000000;
    # No Upgrade header: no Connection header either, so upstream connections stay open.
    map $http_upgrade $connection_upgrade {{ default upgrade; "" ""; }}
{servers}
}}
"""

NGINX_SERVER = """
    upstream {name} {{
        server 127.0.0.1:{upstream_port};
        keepalive 16;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki.server_cert};
        ssl_certificate_key {pki.server_key};
        ssl_client_certificate {pki.client_ca_bundle};
        ssl_verify_client optional;
        ssl_verify_depth 3;
        location / {{
            proxy_pass http://{name};
            include {snippet};
        }}
    }}
"""


def find_nginx() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def cpu_times(pid: int) -> tuple[float, float]:
    """``utime`` and ``stime`` of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


@dataclass(frozen=True)
class Target:
    """A server under load: where the client connects, and whose CPU is measured."""

    name: str
    port: int  # where the client connects (uvicorn itself, or nginx in front of it)
    pid: int  # the uvicorn process


@contextmanager
def _uvicorn(variant: str, mode: str, pki: PKIFiles, logs: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.serve", variant, mode, str(port), str(pki.directory)]
    name = f"uvicorn-{variant}-{mode}"
    with run_foreground(name, argv, logs, port, cwd=ROOT, timeout=30) as process:
        yield port, process.pid


def client_context(pki: PKIFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.root_ca))
    context.load_cert_chain(pki.client_bundle)
    return context


def get(port: int, path: str, context: ssl.SSLContext | None) -> tuple[int, bytes]:
    """One request on a new connection (checks before the rounds, never timed)."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def load(port: int, context: ssl.SSLContext, requests: int, connections: int) -> None:
    """``requests`` GETs of :data:`PATH` over ``connections`` keep-alive connections."""
    errors: list[str] = []

    def worker(count: int) -> None:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        try:
            for _ in range(count):
                connection.request("GET", PATH)
                response = connection.getresponse()
                response.read()
                if response.status != 200 or response.will_close:
                    errors.append(f"status {response.status}, will_close={response.will_close}")
                    return
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    shares = [requests // connections + (i < requests % connections) for i in range(connections)]
    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"port {port}: {errors[0]}")


def _check(targets: dict[str, Target], pki: PKIFiles, context: ssl.SSLContext) -> None:
    """Each server answers as its variant should: asgi-mtls knows the client (its protected
    route admits it) and refuses the same route without a certificate."""
    no_certificate = ssl.create_default_context(cafile=str(pki.root_ca))
    for name, target in targets.items():
        status, body = get(target.port, PATH, context)
        if status != 200 or b'"account":42' not in body:
            raise RuntimeError(f"{name}: {PATH} answered {status} {body!r}")
        if name.startswith("mtls"):
            status, body = get(target.port, PROTECTED, context)
            if status != 200 or b'"payment":"7"' not in body:
                raise RuntimeError(f"{name}: {PROTECTED} answered {status} {body!r}")
            status, body = get(target.port, PROTECTED, no_certificate)
            if status != 401:
                raise RuntimeError(f"{name}: {PROTECTED} without certificate: {status} {body!r}")


def run_e2e(
    *,
    rounds: int,
    requests: int,
    connections: int,
    nginx: str,
    progress: Callable[[str], None],
) -> PartResult:
    """CPU seconds per request of asgi-mtls over stock uvicorn, direct TLS and behind nginx."""
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="asgi-mtls-bench-")))
        pki = BenchPKI.ec().write(work / "pki")
        servers = {
            f"{variant}/{mode}": stack.enter_context(_uvicorn(variant, mode, pki, work))
            for variant in ("stock", "protocols", "floor", "mtls")
            for mode in ("tls", "proxy")
        }
        nginx_ports = {name: free_port() for name in servers if name.endswith("/proxy")}
        blocks = "".join(
            NGINX_SERVER.format(
                name=name.replace("/", "_"),
                upstream_port=servers[name][0],
                port=port,
                pki=pki,
                snippet=SNIPPET,
            )
            for name, port in nginx_ports.items()
        )
        nginx_work = work / "nginx"
        config = NGINX_CONF.format(work=nginx_work, servers=blocks)
        # nginx binds every listen socket before serving: one answering means all do.
        nginx_work.mkdir(parents=True, exist_ok=True)
        (nginx_work / "nginx.conf").write_text(config)
        prefix = ["-p", str(nginx_work), "-c", str(nginx_work / "nginx.conf")]
        stack.enter_context(
            run_foreground(
                "nginx",
                [nginx, *prefix],
                nginx_work,
                min(nginx_ports.values()),
                check=[nginx, "-t", *prefix],
            )
        )
        targets = {
            name: Target(name, nginx_ports.get(name, port), pid)
            for name, (port, pid) in servers.items()
        }
        context = client_context(pki)
        _check(targets, pki, context)
        order = list(targets.values())
        # Per variant its CPU (user + system) and, as "user:<variant>", its user CPU alone:
        # the part the Python code runs in, without the kernel's socket work, which moves
        # with what else the two cores are doing.
        cpu: dict[str, list[float]] = {
            key: [] for name in targets for key in (name, f"user:{name}")
        }
        for number in range(-1, rounds):  # one untimed round first
            shift = number % len(order)
            for target in [*order[shift:], *order[:shift]]:
                user, system = cpu_times(target.pid)
                load(target.port, context, requests, connections)
                user_after, system_after = cpu_times(target.pid)
                if number >= 0:
                    cpu[target.name].append((user_after + system_after - user - system) / requests)
                    cpu[f"user:{target.name}"].append((user_after - user) / requests)
            if number >= 0:
                progress(f"round {number + 1}/{rounds}")
    return PartResult.of(
        cpu,
        cpu_tls=("cost", "mtls/tls", "stock/tls"),
        cpu_nginx=("cost", "mtls/proxy", "stock/proxy"),
        cpu_protocols_tls=("cost", "protocols/tls", "stock/tls"),
        cpu_protocols_nginx=("cost", "protocols/proxy", "stock/proxy"),
        cpu_floor_tls=("cost", "floor/tls", "stock/tls"),
        cpu_floor_nginx=("cost", "floor/proxy", "stock/proxy"),
        user_over_floor_tls=("cost", "user:mtls/tls", "user:floor/tls"),
        user_over_floor_nginx=("cost", "user:mtls/proxy", "user:floor/proxy"),
    )
