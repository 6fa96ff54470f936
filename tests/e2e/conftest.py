"""End-to-end fixtures: the session PKI written to disk, and the rule for missing binaries.

In CI (``CI=true``) a missing server binary is a failure; on a laptop the test is skipped
with a message that says what to install.
"""

from __future__ import annotations

import os
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from asgi_mtls.testing import IssuedCertificate


def require_binary(name: str, install_hint: str) -> str:
    """The path of ``name`` (also looked for in /usr/sbin), or skip/fail per the CI rule."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found:
        return found
    message = f"{name} is not installed: {install_hint}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: end-to-end tests may not skip)")
    pytest.skip(message)


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
