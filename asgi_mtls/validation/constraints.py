"""Name constraints cryptography's verifier does not apply (RFC 5280 §4.2.1.10).

cryptography applies DNS, IP and email subtrees to SANs only.  This module adds, after path
building (it can only refuse, ``untrusted``):

- directoryName subtrees on subjects (and on directoryName SANs) of every certificate below
  the constraining CA, self-issued intermediates excepted (RFC 5280 §6.1.3 (b));
- the refusal of a SAN-less leaf under a CA constrained by other name types: its names (the
  CN) cannot be checked against the constraints, and the identity would come from the CN.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from asgi_mtls.errors import CertificateRejected, RejectionReason

__all__ = ["check_name_constraints", "name_constraints"]


def name_constraints(certificate: x509.Certificate) -> x509.NameConstraints | None:
    """``certificate``'s nameConstraints extension, or ``None``."""
    try:
        extension = certificate.extensions.get_extension_for_oid(ExtensionOID.NAME_CONSTRAINTS)
    except x509.ExtensionNotFound:
        return None
    value = extension.value
    assert isinstance(value, x509.NameConstraints)
    return value


def _normalise(value: str | bytes) -> str | bytes:
    # Close to RFC 4518's caseIgnoreMatch: case-folded, inner whitespace collapsed.
    return " ".join(value.split()).casefold() if isinstance(value, str) else value


def _rdn_key(rdn: x509.RelativeDistinguishedName) -> frozenset[tuple[str, str | bytes]]:
    return frozenset((a.oid.dotted_string, _normalise(a.value)) for a in rdn)


def _name_within(name: x509.Name, base: x509.Name) -> bool:
    """RFC 5280 §4.2.1.10: ``name`` is in the directoryName subtree ``base`` when ``base``'s
    RDN sequence is a prefix of ``name``'s."""
    if len(base.rdns) > len(name.rdns):
        return False
    return all(_rdn_key(a) == _rdn_key(b) for a, b in zip(base.rdns, name.rdns, strict=False))


def _has_san(certificate: x509.Certificate) -> bool:
    try:
        certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return False
    return True


def _directory_names(certificate: x509.Certificate) -> list[x509.Name]:
    """The names a directoryName subtree applies to: the subject (when not empty) and the
    directoryName SANs."""
    names = [certificate.subject] if len(certificate.subject) else []
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return names
    return names + list(san.value.get_values_for_type(x509.DirectoryName))


def check_name_constraints(path: Sequence[x509.Certificate]) -> None:
    """Refuse ``path`` (leaf first) as ``untrusted`` when it breaks a constraint cryptography
    does not check (see the module docstring)."""
    constrained = [
        (index, constraints)
        for index in range(1, len(path))
        if (constraints := name_constraints(path[index])) is not None
    ]
    if not constrained:
        return
    leaf_has_san = _has_san(path[0])
    for index, constraints in constrained:
        subtrees = [*(constraints.permitted_subtrees or ()), *(constraints.excluded_subtrees or ())]
        ca = path[index].subject.rfc4514_string()
        if not leaf_has_san and any(not isinstance(s, x509.DirectoryName) for s in subtrees):
            raise CertificateRejected(
                RejectionReason.UNTRUSTED,
                f"leaf without subjectAltName under name-constrained CA {ca!r}: its names "
                "cannot be checked against the constraints",
            )
        permitted = [
            s.value
            for s in constraints.permitted_subtrees or ()
            if isinstance(s, x509.DirectoryName)
        ]
        excluded = [
            s.value
            for s in constraints.excluded_subtrees or ()
            if isinstance(s, x509.DirectoryName)
        ]
        if not permitted and not excluded:
            continue
        for position, certificate in enumerate(path[:index]):
            if position > 0 and certificate.subject == certificate.issuer:
                continue  # RFC 5280 §6.1.3 (b): self-issued intermediates are exempt
            for name in _directory_names(certificate):
                if permitted and not any(_name_within(name, base) for base in permitted):
                    raise CertificateRejected(
                        RejectionReason.UNTRUSTED,
                        f"{name.rfc4514_string()!r} is outside the permitted directoryName "
                        f"subtrees of {ca!r}",
                    )
                if any(_name_within(name, base) for base in excluded):
                    raise CertificateRejected(
                        RejectionReason.UNTRUSTED,
                        f"{name.rfc4514_string()!r} is in an excluded directoryName subtree "
                        f"of {ca!r}",
                    )
