"""Every Python sample in docs/ and the README runs (issue #11).

Each fenced ``python`` block is executed on its own, in a directory holding the files the
docs name (a PKI from ``asgi-mtls pki init``, ``clients-ca.pem``, ``server.pem``...), with a
fresh module namespace.  An app the block defines is then started (its lifespan runs, so a
misconfigured middleware fails here as it would under uvicorn), and the apps of the getting
started page pass ``asgi-mtls routes --strict``.  Serving calls (``asgi_mtls.uvicorn.run``)
are recorded rather than served.  A sample may go on from its page: the package root's names,
FastAPI's ``Depends`` and an ``app`` (an empty FastAPI app) are there unless it imports or
defines its own.

A block that cannot run alone (a fragment continuing the previous block, a file's excerpt)
is marked in the page by ``<!-- fragment -->`` on the line before its fence; it is still
compiled.  Keep those few: :data:`MAX_FRAGMENTS` fails the suite when they grow.
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.testclient import TestClient

import asgi_mtls
import asgi_mtls.uvicorn as mtls_uvicorn
from asgi_mtls.audit import audit_app
from asgi_mtls.cli.pki import init_pki
from asgi_mtls.testing import CertificateAuthority

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
FRAGMENT = "<!-- fragment -->"
#: The most fragments the docs may hold; raise it only with a reason.
MAX_FRAGMENTS = 12
#: Pages whose apps must pass ``asgi-mtls routes --strict``.
STRICT_PAGES = {"docs/getting-started.md", "README.md"}

_BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)


@dataclass(frozen=True)
class Sample:
    page: str
    line: int
    code: str
    fragment: bool

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _samples() -> list[Sample]:
    found = []
    for path in PAGES:
        text = path.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            found.append(
                Sample(
                    str(path.relative_to(ROOT)),
                    line,
                    match.group("code"),
                    match.group("before").strip() == FRAGMENT,
                )
            )
    return found


SAMPLES = _samples()


def test_fragments_stay_few():
    fragments = [s.id for s in SAMPLES if s.fragment]
    assert len(fragments) <= MAX_FRAGMENTS, fragments
    assert len(SAMPLES) > 40


@pytest.fixture(scope="session")
def docs_files(tmp_path_factory) -> Path:
    """The files the docs' samples name."""
    directory = tmp_path_factory.mktemp("docs")
    init_pki(directory / "pki", ["payments", "reports"])
    ca = directory / "pki" / "ca.pem"
    for name in ("clients-ca.pem", "ca.pem", "corp-root.pem", "clients-root.pem"):
        shutil.copy(ca, directory / name)
    for name in ("server.pem", "server.key"):
        shutil.copy(directory / "pki" / name, directory / name)
    issuing = CertificateAuthority("Docs Root").intermediate("Docs Issuing CA")
    issuing.write(directory, "intermediates")
    issuing.write(directory, "clients-intermediate")
    (directory / "roles.toml").write_text(
        '[roles.payments-admin]\nspiffe_glob = ["spiffe://bank.example/ns/payments/sa/*"]\n'
    )
    return directory


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.fragment], ids=lambda s: s.id)
def test_fragments_compile(sample):
    compile(sample.code, sample.id, "exec")


@pytest.mark.parametrize("sample", [s for s in SAMPLES if not s.fragment], ids=lambda s: s.id)
def test_sample_runs(sample, docs_files, monkeypatch, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(docs_files, workdir)
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    served: list[object] = []
    monkeypatch.setattr(mtls_uvicorn, "run", lambda app, **options: served.append(app))
    for name in [m for m in sys.modules if m in ("myapp", "app", "make_certs")]:
        monkeypatch.delitem(sys.modules, name)
    name = Path(sample.code.split("\n", 1)[0].removeprefix("# ").strip()).stem
    if sample.code.startswith("# ") and sample.code.split("\n", 1)[0].endswith(".py"):
        (workdir / f"{name}.py").write_text(sample.code)  # a file a later sample imports
    # A sample goes on from its page: the package root's names, FastAPI's ``Depends``, and
    # ``app``, which starts as an empty FastAPI app.
    namespace: dict[str, object] = {name: getattr(asgi_mtls, name) for name in asgi_mtls.__all__}
    namespace.update(__name__="docs_sample", app=FastAPI(), Depends=Depends, FastAPI=FastAPI)
    exec(compile(sample.code, sample.id, "exec"), namespace)
    app = namespace.get("app")
    if isinstance(app, Starlette):
        with TestClient(app):
            pass
        if sample.page in STRICT_PAGES:
            flagged = [r.path for r in audit_app(app).routes if r.flagged]
            assert flagged == [], f"asgi-mtls routes --strict flags {flagged}"
