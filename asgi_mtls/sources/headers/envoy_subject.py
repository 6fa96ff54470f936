"""A certificate's subject exactly as BoringSSL prints it for Envoy's XFCC ``Subject``.

Envoy writes ``Subject="<name>"`` where ``<name>`` is ``X509_NAME_print_ex(...,
XN_FLAG_RFC2253)`` of the client certificate's subject (BoringSSL).  asgi-mtls recomputes that
string from the certificate to check that an XFCC element's ``Subject`` belongs to the
element's ``Cert`` (``asgi_mtls.sources.headers.envoy``); it is never used as an identity.

The string differs from RFC 4514 (``x509.Name.rfc4514_string``) in ways that matter for an
exact comparison; each rule below was checked against Envoy 1.40's real output
(``tests/e2e/test_envoy.py``):

- Attributes are read from the DER of the subject (not a re-encoding), RDNs last to first; a
  multi-valued RDN prints its attributes in reverse DER order too, joined by ``+``; RDNs are
  joined by ``,`` without spaces.
- The attribute name is BoringSSL's short name for the OID (:data:`SHORT_NAMES`: ``CN``,
  ``emailAddress``, ``street``, ``GN``...).  An OID without one prints as dotted digits and its
  value as ``#`` + the upper-case hex of the value's DER (tag and length included); so does a
  value whose type is not one of the string types below.
- Values are decoded by their ASN.1 type (UTF8String as UTF-8; BMPString UCS-2 and
  UniversalString UCS-4, big-endian; every other string type one character per byte, so a
  T61String byte 0xE9 is U+00E9), then written as UTF-8 with every byte above 0x7F and every
  control character (below 0x20, and 0x7F) as ``\\XX`` (upper-case hex); ``\\`` ``"`` ``,``
  ``+`` ``<`` ``>`` ``;`` get a backslash, and so do a leading space or ``#`` and a trailing
  space.  ``=`` and ``/`` are left as they are.

Because ``"`` and ``\\`` are always escaped, the string never ends Envoy's quoted value early.
"""

from __future__ import annotations

from typing import Final

from cryptography import x509

__all__ = ["SHORT_NAMES", "envoy_subject"]

# Universal tags of the string types BoringSSL prints as text (``string_type_to_encoding``).
_UTF8 = 0x0C
_BMP = 0x1E
_UNIVERSAL = 0x1C
_ONE_BYTE = frozenset(
    {
        0x12,  # NumericString
        0x13,  # PrintableString
        0x14,  # T61String (TeletexString)
        0x16,  # IA5String
        0x17,  # UTCTime
        0x18,  # GeneralizedTime
        0x1A,  # VisibleString (ISO646String)
    }
)
_ESCAPED = frozenset('\\",+<>;')

_X520 = [
    "CN",
    "SN",
    "serialNumber",
    "C",
    "L",
    "ST",
    "street",
    "O",
    "OU",
    "title",
    "description",
    "searchGuide",
    "businessCategory",
    "postalAddress",
    "postalCode",
    "postOfficeBox",
    "physicalDeliveryOfficeName",
    "telephoneNumber",
    "telexNumber",
    "teletexTerminalIdentifier",
    "facsimileTelephoneNumber",
    "x121Address",
    "internationaliSDNNumber",
    "registeredAddress",
    "destinationIndicator",
    "preferredDeliveryMethod",
    "presentationAddress",
    "supportedApplicationContext",
    "member",
    "owner",
    "roleOccupant",
    "seeAlso",
    "userPassword",
    "userCertificate",
    "cACertificate",
    "authorityRevocationList",
    "certificateRevocationList",
    "crossCertificatePair",
    "name",
    "GN",
    "initials",
    "generationQualifier",
    "x500UniqueIdentifier",
    "dnQualifier",
    "enhancedSearchGuide",
    "protocolInformation",
    "distinguishedName",
    "uniqueMember",
    "houseIdentifier",
    "supportedAlgorithms",
    "deltaRevocationList",
    "dmdName",
]
_PILOT = {
    1: "UID",
    2: "textEncodedORAddress",
    3: "mail",
    4: "info",
    5: "favouriteDrink",
    6: "roomNumber",
    7: "photo",
    8: "userClass",
    9: "host",
    10: "manager",
    11: "documentIdentifier",
    12: "documentTitle",
    13: "documentVersion",
    14: "documentAuthor",
    15: "documentLocation",
    20: "homeTelephoneNumber",
    21: "secretary",
    22: "otherMailbox",
    23: "lastModifiedTime",
    24: "lastModifiedBy",
    25: "DC",
    26: "aRecord",
    27: "pilotAttributeType27",
    28: "mXRecord",
    29: "nSRecord",
    30: "sOARecord",
    31: "cNAMERecord",
    37: "associatedDomain",
    38: "associatedName",
    39: "homePostalAddress",
    40: "personalTitle",
    41: "mobileTelephoneNumber",
    42: "pagerTelephoneNumber",
    43: "friendlyCountryName",
    45: "organizationalStatus",
    46: "janetMailbox",
    47: "mailPreferenceOption",
    48: "buildingName",
    49: "dSAQuality",
    50: "singleLevelQuality",
    51: "subtreeMinimumQuality",
    52: "subtreeMaximumQuality",
    53: "personalSignature",
    54: "dITRedirect",
    55: "audio",
    56: "documentPublisher",
}
_PKCS9 = {
    1: "emailAddress",
    2: "unstructuredName",
    3: "contentType",
    4: "messageDigest",
    5: "signingTime",
    6: "countersignature",
    7: "challengePassword",
    8: "unstructuredAddress",
    9: "extendedCertificateAttributes",
    14: "extReq",
    15: "SMIME-CAPS",
    16: "SMIME",
    20: "friendlyName",
    21: "localKeyID",
}

#: BoringSSL's short names for the OIDs of the attribute arcs a subject uses: X.520
#: (2.5.4.*), the COSINE pilot attributes (0.9.2342.19200300.100.1.*) and PKCS #9
#: (1.2.840.113549.1.9.*), read off Envoy 1.40 for every OID of those arcs up to 2.5.4.110,
#: ...100.1.60 and ...1.9.30 (the others print as dotted OIDs: 2.5.4.97
#: organizationIdentifier and the EV jurisdiction attributes among them).  An OID outside
#: these arcs prints as digits here; if BoringSSL knows a name for it, the Subject disagrees
#: and the element is refused: fail closed, for subjects no CA issues in practice.
SHORT_NAMES: Final[dict[str, str]] = {
    **{f"2.5.4.{arc}": name for arc, name in enumerate(_X520, start=3)},
    "2.5.4.65": "pseudonym",
    "2.5.4.72": "role",
    **{f"0.9.2342.19200300.100.1.{arc}": name for arc, name in _PILOT.items()},
    **{f"1.2.840.113549.1.9.{arc}": name for arc, name in _PKCS9.items()},
    "1.3.6.1.4.1.311.20.2.3": "msUPN",
    "0.9.2342.19200300.100.4.13": "domain",
}


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """``(tag, content start, item end)`` of the DER item at ``pos`` (within ``end``)."""
    if pos + 2 > end:
        raise ValueError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("high-tag-number DER form")
    start = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 0 < count <= 4 or start + count > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > end:
        raise ValueError("truncated DER")
    return tag, start, start + length


def _items(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """``(tag, item start, content start, item end)`` of each item between start and end."""
    items = []
    pos = start
    while pos < end:
        tag, content, item_end = _tlv(data, pos, end)
        items.append((tag, pos, content, item_end))
        pos = item_end
    return items


def _subject_der(certificate: x509.Certificate) -> tuple[bytes, int, int]:
    """The subject Name inside the TBSCertificate (RFC 5280 4.1): its content bounds."""
    tbs = certificate.tbs_certificate_bytes
    tag, content, end = _tlv(tbs, 0, len(tbs))
    fields = _items(tbs, content, end)
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject
    if len(fields) < 5 or tag != 0x30 or fields[4][0] != 0x30:
        raise ValueError("unexpected TBSCertificate shape")
    return tbs, fields[4][2], fields[4][3]


def _oid(body: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs or body[-1] & 0x80:
        raise ValueError("bad OID")
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(arc) for arc in head + arcs[1:])


def _characters(tag: int, body: bytes) -> str:
    if tag == _UTF8:
        return body.decode("utf-8")
    if tag in _ONE_BYTE:
        return body.decode("latin-1")
    width = 2 if tag == _BMP else 4
    if len(body) % width:
        raise ValueError("string length is not a multiple of its character width")
    text = "".join(
        chr(int.from_bytes(body[i : i + width], "big")) for i in range(0, len(body), width)
    )
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        raise ValueError("surrogate code point")
    return text


def _escape(text: str) -> str:
    out: list[str] = []
    last = len(text) - 1
    for index, char in enumerate(text):
        code = ord(char)
        if code > 0x7F:
            out.extend(f"\\{byte:02X}" for byte in char.encode("utf-8"))
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\{code:02X}")
        elif char in _ESCAPED or (index == 0 and char in " #") or (index == last and char == " "):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def envoy_subject(certificate: x509.Certificate) -> str:
    """The subject of ``certificate`` as Envoy writes it in XFCC ``Subject`` (without the
    quotes).  Raises ``ValueError`` for a subject BoringSSL could not print either (invalid
    UTF-8, a surrogate, a broken DER length)."""
    tbs, start, end = _subject_der(certificate)
    entries: list[tuple[int, str]] = []  # (RDN index, "name=value"), in DER order
    for rdn_index, (tag, _, content, rdn_end) in enumerate(_items(tbs, start, end)):
        if tag != 0x31:
            raise ValueError("an RDN is not a SET")
        for ava_tag, _, ava, ava_end in _items(tbs, content, rdn_end):
            parts = _items(tbs, ava, ava_end)
            if ava_tag != 0x30 or len(parts) != 2 or parts[0][0] != 0x06:
                raise ValueError("an attribute is not SEQUENCE { OID, value }")
            (_, _, oid_start, oid_end), (value_tag, value_start, body, value_end) = parts
            oid = _oid(tbs[oid_start:oid_end])
            short = SHORT_NAMES.get(oid)
            text_type = value_tag in _ONE_BYTE or value_tag in (_UTF8, _BMP, _UNIVERSAL)
            if short is None or not text_type:
                value = "#" + tbs[value_start:value_end].hex().upper()
            else:
                value = _escape(_characters(value_tag, tbs[body:value_end]))
            entries.append((rdn_index, f"{short or oid}={value}"))
    out: list[str] = []
    previous: int | None = None
    for rdn_index, text in reversed(entries):
        if previous is not None:
            out.append("+" if rdn_index == previous else ",")
        out.append(text)
        previous = rdn_index
    return "".join(out)
