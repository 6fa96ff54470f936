"""The certificates every benchmark uses, made before (never inside) a timed region.

One EC P-256 hierarchy (root, intermediate, a repeat client) serves the hit-path rows and the
end-to-end runs; an RSA-2048 hierarchy serves the RSA miss row.  Never-seen clients come from
:meth:`BenchPKI.fresh_clients`: distinct certificates (serial, subject, SPIFFE ID) issued with
one shared leaf key, since generating an RSA key per certificate would take longer than the
benchmark and the leaf's own key plays no part in validating it.  Junk for the memory floods
comes from :func:`self_signed_clients`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from asgi_mtls.testing import CertificateAuthority, IssuedCertificate

__all__ = ["PAYMENTS", "BenchPKI", "PKIFiles", "self_signed_clients"]

#: The repeat client's SPIFFE ID, and the principal the protected routes require.
PAYMENTS = "spiffe://bank.example/payments"

LeafKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class PKIFiles:
    """The PEM files the end-to-end servers, nginx and ``ab`` read."""

    directory: Path
    server_cert: Path
    server_key: Path
    root_ca: Path
    intermediate: Path
    client_ca_bundle: Path  # root + intermediate: what uvicorn and nginx verify against
    client_bundle: Path  # the client's certificate, its intermediate, then its key (ab -E)


@dataclass
class BenchPKI:
    """A root, an intermediate that issues clients, and one repeat client."""

    root: CertificateAuthority
    intermediate: CertificateAuthority
    client: IssuedCertificate
    leaf_key: LeafKey
    _serials: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def ec(cls) -> BenchPKI:
        """EC P-256 keys throughout, ECDSA-SHA256 signatures (what the test suite uses)."""
        return cls._build(lambda: ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def rsa(cls, bits: int = 2048) -> BenchPKI:
        """RSA keys of ``bits`` throughout, RSA-SHA256 signatures."""
        return cls._build(lambda: rsa.generate_private_key(65537, bits))

    @classmethod
    def _build(cls, new_key: Callable[[], LeafKey]) -> BenchPKI:
        root = CertificateAuthority("Bench Root CA", key=new_key())
        intermediate = root.intermediate("Bench Clients CA", key=new_key())
        leaf_key = new_key()
        client = intermediate.issue_client("payments", spiffe_id=PAYMENTS, key=leaf_key)
        return cls(root, intermediate, client, leaf_key)

    @property
    def intermediate_pem(self) -> str:
        return self.intermediate.pem

    def fresh_clients(self, count: int) -> list[IssuedCertificate]:
        """``count`` client certificates never issued before, each with its own serial,
        subject and SPIFFE ID.  The CA's record of what it issued is emptied afterwards, so
        that a long run does not keep every certificate alive."""
        issued = []
        for _ in range(count):
            number = next(self._serials)
            issued.append(
                self.intermediate.issue_client(
                    f"client-{number}",
                    spiffe_id=f"spiffe://bank.example/clients/{number}",
                    key=self.leaf_key,
                )
            )
        self.intermediate.issued.clear()
        return issued

    def write(self, directory: Path) -> PKIFiles:
        """Write the server certificate (issued by the root), CA files and the client bundle."""
        directory.mkdir(parents=True, exist_ok=True)
        server_cert, server_key = self.root.issue_server("localhost").write(directory, "server")
        root_ca = self.root.write(directory, "root-ca")
        intermediate = self.intermediate.write(directory, "intermediate")
        bundle = directory / "client-ca-bundle.pem"
        bundle.write_text(self.root.pem + self.intermediate.pem)
        client_bundle = directory / "client-bundle.pem"
        client_bundle.write_text(self.client.pem + self.intermediate.pem + self.client.key_pem)
        client_bundle.chmod(0o600)
        return PKIFiles(
            directory, server_cert, server_key, root_ca, intermediate, bundle, client_bundle
        )


def self_signed_clients(key: ec.EllipticCurvePrivateKey, start: int, count: int) -> list[str]:
    """``count`` distinct self-signed clientAuth certificates (PEM), numbered from ``start``:
    what an attacker can mint for free.  Each passes the leaf checks (client usage, validity)
    and fails only at path building, the expensive way to be refused."""
    now = dt.datetime.now(dt.UTC)
    public_key = key.public_key()
    pems = []
    for number in range(start, start + count):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"junk-{number}")])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public_key)
            .serial_number(number + 1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"spiffe://junk.example/{number}")]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(key, hashes.SHA256())
        )
        pems.append(certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"))
    return pems
