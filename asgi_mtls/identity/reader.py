"""Reading a validated chain into a :class:`~asgi_mtls.identity.identity.ClientIdentity`, and
(opt-in, issue #12) a server-verified subject name into one.

Every name the identity will carry is checked for its kind first
(:mod:`asgi_mtls.identity.names`, issue #8): a DNS, email or URI subjectAltName that is not
well formed, or a subject attribute with invisible characters, refuses the certificate
(``invalid_name``); then the principal strategy picks the principal
(:mod:`asgi_mtls.identity.principals`).  A server-verified name goes through the same subject
checks (:func:`subject_attributes`) and the same strategy, and keeps a principal only of the
kinds a subject can give (``cn``, ``subject``): :func:`build_name_identity`.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.identity.identity import SHORT_NAMES, ClientIdentity, NoCertificateError
from asgi_mtls.identity.names import (
    NameKind,
    Principal,
    SpiffeId,
    check_name,
    is_dns_name,
    is_email,
    is_uri,
    parse_spiffe_id,
)
from asgi_mtls.identity.principals import PrincipalStrategy

__all__ = ["build_identity", "build_name_identity", "subject_attributes"]


def _invalid(detail: str) -> CertificateRejected:
    return CertificateRejected(RejectionReason.INVALID_NAME, detail)


def _attribute_text(value: object, oid: x509.ObjectIdentifier) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    if "\x00" in text:
        raise CertificateRejected(RejectionReason.MALFORMED, "a certificate name contains NUL")
    try:
        return check_name(text, f"subject attribute {oid.dotted_string}")
    except ValueError as exc:
        raise _invalid(str(exc)) from None


def subject_attributes(name: x509.Name) -> tuple[tuple[str, str], ...]:
    """``name``'s attributes as ``(short name or dotted OID, value)``, in encoded order, each
    value checked: NUL is ``malformed``, an invisible or control character ``invalid_name``."""
    return tuple(
        (SHORT_NAMES.get(a.oid, a.oid.dotted_string), _attribute_text(a.value, a.oid)) for a in name
    )


def _san_values(
    san: x509.SubjectAlternativeName | None,
    kind: type[x509.DNSName | x509.UniformResourceIdentifier | x509.RFC822Name],
    valid: Callable[[str], bool],
) -> tuple[str, ...]:
    if san is None:
        return ()
    values = tuple(san.get_values_for_type(kind))
    for value in values:
        if "\x00" in value:
            raise CertificateRejected(RejectionReason.MALFORMED, "a certificate name contains NUL")
        if not valid(value):
            raise _invalid(f"{kind.__name__} {value[:200]!r} is not well formed")
    return values


def build_identity(
    chain: tuple[x509.Certificate, ...],
    *,
    source: str,
    principal: PrincipalStrategy,
    subject: x509.Name | None = None,
) -> ClientIdentity:
    """Read a validated chain (leaf first) into a :class:`ClientIdentity`; ``subject``: the
    leaf's, if the caller parsed it already (``VerifiedChain.subject``).

    Raises ``CertificateRejected``: ``invalid_name`` when a DNS, URI or email SAN is not well
    formed for its kind (or a subject attribute holds invisible characters), ``malformed`` for
    a NUL in a name, ``no_principal`` when the strategy finds no name.
    """
    leaf = chain[0]
    attributes = subject_attributes(leaf.subject if subject is None else subject)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    uris = _san_values(san, x509.UniformResourceIdentifier, is_uri)
    spiffe: SpiffeId | None = None
    if len(uris) == 1 and uris[0].startswith("spiffe://"):
        try:
            spiffe = parse_spiffe_id(uris[0])
        except ValueError:
            spiffe = None
    identity = ClientIdentity(
        principal="",
        principal_kind=NameKind.CUSTOM,
        source=source,
        certificate=leaf,
        chain=chain,
        subject_attributes=attributes,
        dns_names=_san_values(san, x509.DNSName, is_dns_name),
        uris=uris,
        emails=_san_values(san, x509.RFC822Name, is_email),
        ip_addresses=tuple(str(v) for v in san.get_values_for_type(x509.IPAddress)) if san else (),
        spiffe_id=spiffe,
    )
    return _with_principal(identity, principal.pick(identity), principal)


def _with_principal(
    identity: ClientIdentity, name: Principal | None, principal: PrincipalStrategy
) -> ClientIdentity:
    if name is None or not name.value:
        raise CertificateRejected(
            RejectionReason.NO_PRINCIPAL, f"no principal for subject {identity.subject!r}"
        )
    if "\x00" in name.value:
        raise CertificateRejected(RejectionReason.MALFORMED, "principal contains NUL")
    groups = principal.groups(identity)
    # The identity is not shared yet: its principal is set in place rather than by
    # dataclasses.replace, which builds the whole frozen dataclass a second time (issue #10:
    # a new client costs its signatures).  What the strategy computed on the draft is dropped.
    settle = object.__setattr__
    settle(identity, "principal", name.value)
    settle(identity, "principal_kind", name.kind)
    settle(identity, "groups", groups)
    identity.computed.clear()
    identity.__post_init__()  # the shape check of the finished identity, as replace() ran it
    return identity


#: The principal kinds a subject name alone can give.
_SUBJECT_KINDS = (NameKind.CN, NameKind.SUBJECT)


def build_name_identity(
    name: x509.Name, *, source: str, principal: PrincipalStrategy
) -> ClientIdentity:
    """A server-verified subject name (issue #12) as a :class:`ClientIdentity` with
    ``verified_by == "server"``: the subject attributes, checked as a certificate's are, and
    nothing else (no certificate, chain, SAN or SPIFFE ID).

    Only a principal read from the subject counts: a strategy that gives a ``cn`` or
    ``subject`` principal (``"cn"``, ``"subject"``, ``"kubernetes"``, ``"envoy"`` and
    ``"default"``, which fall back to them when there are no SANs, or the app's mapper
    returning such a :class:`~asgi_mtls.identity.names.Principal`).  Any other kind, a plain
    string from the app's mapper (kind ``custom``, which requirements compare by value, so a
    CN holding ``spiffe://...`` would meet a SPIFFE requirement), or a strategy that asks for
    what only a certificate knows (``"fingerprint"``) is ``no_principal``.  Raises
    ``CertificateRejected`` as :func:`build_identity` does for the subject.
    """
    identity = ClientIdentity(
        principal="",
        principal_kind=NameKind.CUSTOM,
        source=source,
        certificate=None,
        chain=(),
        subject_attributes=subject_attributes(name),
        dns_names=(),
        uris=(),
        emails=(),
        ip_addresses=(),
        spiffe_id=None,
        verified_by="server",
        server_subject=name,
    )
    try:
        chosen = principal.pick(identity)
    except NoCertificateError as exc:
        raise CertificateRejected(
            RejectionReason.NO_PRINCIPAL, f"server-verified name {identity.subject!r}: {exc}"
        ) from None
    if chosen is not None and chosen.value and chosen.kind not in _SUBJECT_KINDS:
        raise CertificateRejected(
            RejectionReason.NO_PRINCIPAL,
            f"server-verified name {identity.subject!r}: the {principal.name!r} strategy gave "
            f"a {chosen.kind.value} principal; a name without a certificate (issue #12) gives "
            "only cn or subject principals",
        )
    return _with_principal(identity, chosen, principal)
