"""``asgi-mtls pki init|issue|revoke``: a development PKI in a directory, without writing code.

::

    asgi-mtls pki init DIR [--client NAME]... [--trust-domain DOMAIN] [--days N]
    asgi-mtls pki issue DIR NAME [--spiffe-id ID] [--dns NAME]... [--email ADDR]... [--cn-only]
    asgi-mtls pki revoke DIR NAME

``init`` writes ``DIR/ca.pem`` (the bundle to trust: ``trust=``, ``--ssl-ca-certs``) and
``DIR/ca.key``, ``DIR/server.pem`` and ``DIR/server.key`` (for ``localhost``, ``127.0.0.1``
and ``::1``), and for each client ``DIR/NAME.pem``, ``DIR/NAME.key`` and ``DIR/NAME.p12``.
A client's identity is ``CN=NAME`` and the SPIFFE ID ``spiffe://DOMAIN/NAME`` unless told
otherwise.  ``issue`` adds a client later, signed by the same CA key; ``revoke`` adds a
client's serial to ``DIR/crl.pem`` (cumulative, signed by the CA).

The certificates are made by :class:`asgi_mtls.testing.CertificateAuthority` (EC P-256,
clientAuth / serverAuth extended key usage) and the keys are written unencrypted, readable by
their owner only: a PKI for development and tests, never for production.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from asgi_mtls.errors import ConfigurationError
from asgi_mtls.testing import CertificateAuthority, IssuedCertificate

__all__ = ["add_parser", "init_pki", "issue_client", "revoke_client"]

#: Names that are not clients: the files ``init`` writes for itself.
_RESERVED: Final = frozenset({"ca", "server", "crl"})
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DEFAULT_DOMAIN: Final = "example.org"
_CA_NAME: Final = "asgi-mtls development CA"


def add_parser(commands: Any) -> None:
    pki = commands.add_parser("pki", help="make a development PKI: a CA, a server and clients")
    actions = pki.add_subparsers(dest="action", required=True, metavar="{init,issue,revoke}")

    init = actions.add_parser("init", help="write a CA, a server certificate and clients")
    init.add_argument("directory", help="where to write the files (created if missing)")
    init.add_argument(
        "--client",
        action="append",
        default=[],
        dest="clients",
        metavar="NAME",
        help="a client to issue (repeatable): NAME.pem, NAME.key, NAME.p12",
    )
    init.add_argument(
        "--server-name",
        action="append",
        default=[],
        dest="server_names",
        metavar="DNS",
        help="server DNS name (repeatable; default: localhost)",
    )
    _add_client_options(init, replaces="an existing PKI")
    init.set_defaults(run=run_init)

    issue = actions.add_parser("issue", help="issue one more client certificate")
    _add_client_name(issue, "the client's name: CN=NAME and the file names")
    issue.add_argument("--spiffe-id", help="SPIFFE ID (default: spiffe://DOMAIN/NAME)")
    issue.add_argument("--dns", action="append", default=[], help="DNS SAN (repeatable)")
    issue.add_argument("--email", action="append", default=[], help="email SAN (repeatable)")
    _add_client_options(issue, replaces="an existing NAME.pem")
    issue.set_defaults(run=run_issue)

    revoke = actions.add_parser("revoke", help="revoke a client: add it to DIR/crl.pem")
    _add_client_name(revoke, "the client to revoke (DIR/NAME.pem)")
    revoke.add_argument(
        "--crl-days", type=int, default=30, help="days until the CRL's nextUpdate (default: 30)"
    )
    revoke.set_defaults(run=run_revoke)


def _add_client_name(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("directory", help="a directory made by 'asgi-mtls pki init'")
    parser.add_argument("name", help=what)


#: What ``init`` and ``issue`` both ask about the clients they issue, named after the
#: parameters of :func:`init_pki` and :func:`issue_client` that take it.
_CLIENT_OPTIONS: Final = ("trust_domain", "cn_only", "days", "p12_password", "force")


def _add_client_options(parser: argparse.ArgumentParser, *, replaces: str) -> None:
    parser.add_argument(
        "--trust-domain",
        default=_DEFAULT_DOMAIN,
        help=f"SPIFFE trust domain of the default IDs, spiffe://DOMAIN/NAME (default: "
        f"{_DEFAULT_DOMAIN})",
    )
    parser.add_argument(
        "--cn-only", action="store_true", help="no SPIFFE ID, no subjectAltName: CN=NAME only"
    )
    parser.add_argument(
        "--days", type=int, default=365, help="client certificate lifetime (default: 365)"
    )
    parser.add_argument(
        "--p12-password",
        default="",
        help="password of the PKCS#12 bundles (default: none)",
    )
    parser.add_argument("--force", action="store_true", help=f"replace {replaces}")


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in _CLIENT_OPTIONS}


# -- the operations ---------------------------------------------------------------------------


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name in _RESERVED:
        raise ConfigurationError(
            f"client name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, not "
            f"{', '.join(sorted(_RESERVED))})"
        )
    return name


def _validity(days: int) -> dt.datetime:
    if not 1 <= days <= 3650:
        raise ConfigurationError(f"--days {days}: give a lifetime from 1 to 3650 days")
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)


def _write_key(path: Path, pem: bytes) -> None:
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_client(
    directory: Path, name: str, issued: IssuedCertificate, password: str
) -> list[Path]:
    cert_path, key_path = issued.write(directory, name)
    key = issued.key
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigurationError(f"cannot bundle a {type(key).__name__} in PKCS#12")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    bundle = pkcs12.serialize_key_and_certificates(
        name.encode(), key, issued.certificate, list(issued.chain) or None, encryption
    )
    p12_path = directory / f"{name}.p12"
    _write_key(p12_path, bundle)
    return [cert_path, key_path, p12_path]


def _client_names(
    name: str,
    *,
    spiffe_id: str | None,
    domain: str,
    dns: list[str],
    email: list[str],
    cn_only: bool,
) -> dict[str, Any]:
    if cn_only:
        if spiffe_id or dns or email:
            raise ConfigurationError(
                "--cn-only issues no subjectAltName: drop --spiffe-id, --dns, --email"
            )
        return {}
    uri = spiffe_id or f"spiffe://{domain}/{name}"
    if not uri.startswith("spiffe://"):
        raise ConfigurationError(f"--spiffe-id {uri!r} must start with 'spiffe://'")
    return {"spiffe_id": uri, "dns_names": dns, "emails": email}


def init_pki(
    directory: Path,
    clients: list[str],
    *,
    trust_domain: str = _DEFAULT_DOMAIN,
    cn_only: bool = False,
    server_names: list[str] | None = None,
    days: int = 365,
    p12_password: str = "",
    force: bool = False,
) -> list[Path]:
    """Write a CA, a server certificate and ``clients``; return the paths written."""
    for name in clients:
        _check_name(name)
    if len(set(clients)) != len(clients):
        raise ConfigurationError(f"--client names repeat: {clients}")
    not_after = _validity(days)
    if (directory / "ca.pem").exists() and not force:
        raise ConfigurationError(
            f"{directory / 'ca.pem'} exists: add clients with 'asgi-mtls pki issue "
            f"{directory} NAME', or pass --force to make a new CA"
        )
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(_CA_NAME)
    written = [ca.write(directory, "ca")]
    _write_key(
        directory / "ca.key",
        ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    written.append(directory / "ca.key")
    written += ca.issue_server(*(server_names or ["localhost"])).write(directory, "server")
    (directory / "crl.pem").unlink(missing_ok=True)
    for name in clients:
        names = _client_names(
            name, spiffe_id=None, domain=trust_domain, dns=[], email=[], cn_only=cn_only
        )
        issued = ca.issue_client(name, not_after=not_after, **names)
        written += _write_client(directory, name, issued, p12_password)
    return written


def _load_ca(directory: Path) -> CertificateAuthority:
    """The CA of a directory made by :func:`init_pki`: its key, under its own name.

    ``CertificateAuthority`` always makes its own certificate; one made from the stored key
    and the stored subject issues certificates that chain to the stored ``ca.pem`` (same
    issuer name, same key, same key identifier), which is all ``issue`` and ``revoke`` need.
    """
    ca_pem, ca_key = directory / "ca.pem", directory / "ca.key"
    for path in (ca_pem, ca_key):
        if not path.is_file():
            raise ConfigurationError(
                f"{path} not found: run 'asgi-mtls pki init {directory}' first"
            )
    certificate = x509.load_pem_x509_certificate(ca_pem.read_bytes())
    key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigurationError(f"{ca_key}: not an EC or RSA private key")
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ca = CertificateAuthority(str(common_names[0].value) if common_names else _CA_NAME, key=key)
    if ca.certificate.subject != certificate.subject or (
        ca.certificate.public_key() != certificate.public_key()
    ):
        raise ConfigurationError(
            f"{ca_pem} and {ca_key} do not belong together or were not made by 'asgi-mtls pki init'"
        )
    return ca


def issue_client(
    directory: Path,
    name: str,
    *,
    spiffe_id: str | None = None,
    trust_domain: str = _DEFAULT_DOMAIN,
    dns: list[str] | None = None,
    email: list[str] | None = None,
    cn_only: bool = False,
    days: int = 365,
    p12_password: str = "",
    force: bool = False,
) -> list[Path]:
    """Issue one client certificate with the CA in ``directory``; return the paths written."""
    _check_name(name)
    not_after = _validity(days)
    names = _client_names(
        name,
        spiffe_id=spiffe_id,
        domain=trust_domain,
        dns=dns or [],
        email=email or [],
        cn_only=cn_only,
    )
    ca = _load_ca(directory)
    if (directory / f"{name}.pem").exists() and not force:
        raise ConfigurationError(
            f"{directory / (name + '.pem')} exists: pick another name, or --force to replace it"
        )
    try:
        issued = ca.issue_client(name, not_after=not_after, **names)
    except ValueError as exc:
        raise ConfigurationError(f"client {name!r}: {exc}") from None
    return _write_client(directory, name, issued, p12_password)


def revoke_client(directory: Path, name: str, *, crl_days: int = 30) -> Path:
    """Add client ``name``'s serial to ``directory/crl.pem`` (kept cumulative, numbered)."""
    _check_name(name)
    ca = _load_ca(directory)
    cert_path = directory / f"{name}.pem"
    if not cert_path.is_file():
        raise ConfigurationError(f"{cert_path} not found: no client {name!r} in {directory}")
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    crl_path = directory / "crl.pem"
    number = 1
    if crl_path.exists():
        previous = x509.load_pem_x509_crl(crl_path.read_bytes())
        for entry in previous:
            ca.revoke(entry.serial_number, at=entry.revocation_date_utc)
        try:
            number = previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            number += 1
        except x509.ExtensionNotFound:
            pass
    if certificate.serial_number not in ca.revoked:
        ca.revoke(certificate.serial_number)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    crl = ca.crl(this_update=now, next_update=now + dt.timedelta(days=crl_days), number=number)
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return crl_path


# -- the command ------------------------------------------------------------------------------


def run_init(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    written = init_pki(
        directory, args.clients, server_names=args.server_names, **_client_options(args)
    )
    for path in written:
        print(path)
    print(
        f"# trust {directory / 'ca.pem'} (trust=, --ca); serve with {directory / 'server.pem'} "
        f"and {directory / 'server.key'}; never use these keys in production"
    )
    return 0


def run_issue(args: argparse.Namespace) -> int:
    written = issue_client(
        Path(args.directory),
        args.name,
        spiffe_id=args.spiffe_id,
        dns=args.dns,
        email=args.email,
        **_client_options(args),
    )
    for path in written:
        print(path)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    print(revoke_client(Path(args.directory), args.name, crl_days=args.crl_days))
    return 0
