"""The demo's development PKI, generated locally on first run (never use it in production)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asgi_mtls.testing import CertificateAuthority

PAYMENTS = "spiffe://bank.example/payments"
REPORTS = "spiffe://bank.example/reports"


@dataclass(frozen=True)
class DevPKI:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def client_ca_bundle(self) -> Path:
        return self.directory / "client-ca-bundle.pem"

    @property
    def server(self) -> tuple[Path, Path]:
        return self.directory / "server.pem", self.directory / "server.key"

    def client(self, name: str) -> tuple[Path, Path]:
        return self.directory / f"{name}.pem", self.directory / f"{name}.key"


CLIENTS = ("payments", "reports", "untrusted")


def ensure_dev_pki(directory: Path) -> DevPKI:
    """Create the PKI in ``directory`` unless it is already there; return its paths."""
    pki = DevPKI(directory)
    wanted = [pki.ca, pki.client_ca_bundle, *pki.server] + [
        p for c in CLIENTS for p in pki.client(c)
    ]
    if all(path.exists() for path in wanted):
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("asgi-mtls demo CA")
    ca.write(directory, "ca")
    pki.client_ca_bundle.write_text(ca.pem)
    ca.issue_server("localhost").write(directory, "server")
    ca.issue_client("payments-service", spiffe_id=PAYMENTS).write(directory, "payments")
    ca.issue_client("reports-service", spiffe_id=REPORTS).write(directory, "reports")
    attacker = CertificateAuthority("somebody else's CA")
    attacker.issue_client("intruder", spiffe_id=PAYMENTS).write(directory, "untrusted")
    return pki
