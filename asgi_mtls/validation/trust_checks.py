"""Trust material that cannot work, found when it is loaded rather than on every request.

Issue #11: a typo in the trust path, a private key or the server's own certificate given as
trust, used to start silently (or answer 500s) and then refuse every client as ``untrusted``.
Here each is a :class:`~asgi_mtls.errors.ConfigurationError` with one line naming the file and
the fix, and a trust set that loads but can never accept a client (every root expired, a CA
that may not sign certificates, a CA restricted to server certificates) is described by
:func:`unusable_certificates` for one warning per load.

What counts as a CA is RFC 5280's basicConstraints ``cA`` (section 4.2.1.9).  A certificate
that is not a CA is still a valid trust anchor for exactly itself (cryptography accepts a leaf
found in the store, a path of one: a way to trust one self-signed client directly), so a trust
set is refused only when none of its certificates could ever be accepted: no CA, and no leaf
that may authenticate a client (``clientAuth``, or no extendedKeyUsage at all).
"""

from __future__ import annotations

import datetime as dt
import errno
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from asgi_mtls.errors import ConfigurationError

__all__ = [
    "check_trust_roots",
    "describe",
    "is_ca",
    "read_certificates",
    "unusable_certificates",
]

_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_FIX_TRUST = (
    "give the CA certificate that issues your client certificates "
    "('asgi-mtls pki init DIR' writes one as DIR/ca.pem)"
)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def describe(certificate: x509.Certificate) -> str:
    """``'CN=Clients CA'``: the subject, quoted, for messages."""
    return repr(certificate.subject.rfc4514_string() or "<empty subject>")


def is_ca(certificate: x509.Certificate) -> bool | None:
    """basicConstraints ``cA`` (``None`` when the extension is absent or unreadable)."""
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return None


def _extended_key_usages(certificate: x509.Certificate) -> list[x509.ObjectIdentifier] | None:
    try:
        return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except (x509.ExtensionNotFound, ValueError):
        return None


def _may_authenticate_clients(usages: list[x509.ObjectIdentifier] | None) -> bool:
    return usages is None or bool(
        {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(usages)
    )


def read_certificates(
    item: str | os.PathLike[str] | bytes, option: str = "trust"
) -> list[x509.Certificate]:
    """The certificates of one file (``str`` or path) or PEM/DER ``bytes`` given as ``option``.

    Raises :class:`ConfigurationError` with one line naming the file and the fix: missing,
    unreadable, a directory, empty, a private key, nothing that decodes as a certificate.
    """
    if isinstance(item, bytes):
        where, data = f"{option}= bytes", item
    else:
        path = Path(item)
        where = f"{option} file {str(path)!r}"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            relative = "" if path.is_absolute() else f" (relative to {os.getcwd()})"
            raise ConfigurationError(
                f"{where} does not exist{relative}: check the path given as {option}=; "
                + _FIX_TRUST
            ) from None
        except IsADirectoryError:
            raise ConfigurationError(
                f"{where} is a directory: give the PEM file inside it, e.g. "
                f"{str(path / 'ca.pem')!r}"
            ) from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else _one_line(exc)
            fix = (
                "make it readable by the user running the server"
                if exc.errno in (errno.EACCES, errno.EPERM)
                else "check the file"
            )
            raise ConfigurationError(f"{where} cannot be read ({reason}): {fix}") from None
    if not data.strip():
        raise ConfigurationError(f"{where} is empty: " + _FIX_TRUST)
    if _PEM_CERTIFICATE in data:
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise ConfigurationError(
                f"{where} holds a PEM certificate that cannot be decoded ({_one_line(exc)}): "
                "replace it with an intact copy"
            ) from None
    if b"PRIVATE KEY-----" in data:
        raise ConfigurationError(
            f"{where} holds a private key, not a certificate: {option}= takes certificates "
            f"only; {_FIX_TRUST}"
        )
    if b"-----BEGIN" in data:
        kind = data.split(b"-----BEGIN", 1)[1].split(b"-----", 1)[0].strip()
        raise ConfigurationError(
            f"{where} holds a PEM {kind.decode('ascii', 'replace')!r} block, not a "
            f"certificate: {_FIX_TRUST}"
        )
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ConfigurationError(
            f"{where} holds no certificate (neither PEM 'BEGIN CERTIFICATE' nor DER): " + _FIX_TRUST
        ) from None


def check_trust_roots(roots: Sequence[x509.Certificate], where: str = "trust") -> None:
    """Refuse (:class:`ConfigurationError`) a trust set under which no client certificate
    could ever be accepted: no CA, and no leaf that may itself authenticate a client."""
    if not roots:
        raise ConfigurationError(f"{where} holds no certificate: " + _FIX_TRUST)
    if any(is_ca(root) is not False for root in roots):
        return
    if any(_may_authenticate_clients(_extended_key_usages(root)) for root in roots):
        return  # a client certificate trusted as itself (see the module docstring)
    leaf = roots[0]
    usages = _extended_key_usages(leaf) or []
    what = (
        "a server certificate (serverAuth)"
        if ExtendedKeyUsageOID.SERVER_AUTH in usages
        else "an end-entity certificate"
    )
    raise ConfigurationError(
        f"{where} holds no CA certificate: {describe(leaf)} is {what}, not a CA (basicConstraints "
        f"CA:FALSE), so no client could ever be accepted; {_FIX_TRUST}"
    )


def unusable_certificates(
    certificates: Iterable[x509.Certificate], at: dt.datetime | None = None
) -> list[str]:
    """Why each of ``certificates`` (trust roots or intermediates) can never be part of an
    accepted client path, one phrase each: expired, not yet valid, a CA whose keyUsage
    forbids signing certificates, a CA whose extendedKeyUsage excludes ``clientAuth``, a leaf
    restricted to other uses.  Key-policy problems are reported by the validator itself."""
    moment = at or dt.datetime.now(dt.UTC)
    problems: list[str] = []
    for certificate in certificates:
        name = describe(certificate)
        if certificate.not_valid_after_utc < moment:
            problems.append(
                f"{name} expired on {certificate.not_valid_after_utc.date().isoformat()}"
            )
            continue
        if certificate.not_valid_before_utc > moment:
            problems.append(
                f"{name} is not valid before "
                f"{certificate.not_valid_before_utc.isoformat(timespec='minutes')}"
            )
            continue
        usages = _extended_key_usages(certificate)
        if is_ca(certificate):
            try:
                usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
                may_sign = usage.key_cert_sign
            except (x509.ExtensionNotFound, ValueError):
                may_sign = True
            if not may_sign:
                problems.append(f"{name} is a CA whose keyUsage forbids signing certificates")
            elif not _may_authenticate_clients(usages):
                problems.append(
                    f"{name} is a CA whose extendedKeyUsage excludes clientAuth "
                    "(a CA for server certificates)"
                )
        elif not _may_authenticate_clients(usages):
            problems.append(f"{name} is not a CA and not a client certificate")
    return problems
