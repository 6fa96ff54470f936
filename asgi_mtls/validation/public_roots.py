"""Refuse public CA bundles as client trust roots.

A trust set such as ``/etc/ssl/certs/ca-certificates.crt`` makes every certificate a public
CA issues with the clientAuth usage (many public TLS server certificates carry it) a valid
client: anyone can buy one.  It loads without a sound, so the validator checks the roots it
is given (at construction and on every reload) and refuses, with a ``ValueError`` naming the
opt-in, a set that

- holds a **well-known public root**: one whose SubjectPublicKeyInfo SHA-256 is in
  :data:`~asgi_mtls.validation.public_root_digests.PUBLIC_ROOT_SPKI_SHA256`, the roots of
  Mozilla's root program as Debian's ``ca-certificates`` ships them (keys, not certificates,
  so a re-issued or cross-signed root with the same key is still recognised); or
- holds more than ``max_self_signed_roots`` (:data:`MAX_SELF_SIGNED_ROOTS`, 8) self-issued
  roots, which catches other public bundles: a client PKI has one root, two during a
  rotation.

``allow_public_roots=True`` accepts such a set; a WARNING is then logged once.

Regenerate the digests (after a ``ca-certificates`` update) with one command from a checkout::

    python -m asgi_mtls.validation.public_roots /etc/ssl/certs/ca-certificates.crt

which rewrites ``asgi_mtls/validation/public_root_digests.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from asgi_mtls.validation.public_root_digests import PUBLIC_ROOT_SPKI_SHA256
from asgi_mtls.validation.trust import spki_sha256

__all__ = ["MAX_SELF_SIGNED_ROOTS", "check_public_roots", "public_roots_in"]

#: Default limit of self-issued roots in one trust set ("a handful": a root, its successor
#: during a rotation, a few tenants).
MAX_SELF_SIGNED_ROOTS: Final = 8

DEFAULT_BUNDLE: Final = "/etc/ssl/certs/ca-certificates.crt"
_DATA_MODULE: Final = Path(__file__).with_name("public_root_digests.py")
_PEM_BLOCK: Final = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----", re.DOTALL
)


def public_roots_in(roots: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """The certificates of ``roots`` whose key is a well-known public root's (a key that
    cannot be decoded is no public root's; the key policy reports it)."""
    public = []
    for root in roots:
        try:
            digest = spki_sha256(root)
        except (ValueError, UnsupportedAlgorithm):
            continue
        if digest in PUBLIC_ROOT_SPKI_SHA256:
            public.append(root)
    return public


def check_public_roots(
    roots: Sequence[x509.Certificate], *, allow_public_roots: bool, max_self_signed_roots: int
) -> str | None:
    """Raise ``ValueError`` (one line, naming the option) when ``roots`` looks like a public
    bundle and that was not allowed; when it was, return the warning to log, else ``None``."""
    public = public_roots_in(roots)
    self_issued = sum(1 for root in roots if root.subject == root.issuer)
    if public:
        example = public[0].subject.rfc4514_string()
        problem = (
            f"trust_roots holds {len(public)} well-known public root CA(s) (e.g. {example!r}): "
            "any client certificate a public CA issues would be accepted"
        )
    elif self_issued > max_self_signed_roots:
        problem = (
            f"trust_roots holds {self_issued} self-signed roots, more than "
            f"max_self_signed_roots={max_self_signed_roots}: it looks like a public CA bundle"
        )
    else:
        return None
    if not allow_public_roots:
        raise ValueError(
            f"{problem}; configure your own client CA, or pass allow_public_roots=True to "
            "CertificateValidator to accept this (or raise max_self_signed_roots for many "
            "private roots)"
        )
    return f"{problem} (allowed by allow_public_roots=True)"


# --- regenerating the digests ---------------------------------------------------------------


def render(bundle: Path) -> tuple[str, int]:
    """The source of the data module for the roots in ``bundle`` (a PEM file), and the
    number of distinct keys in it.  Deterministic: the same bundle gives the same file."""
    data = bundle.read_bytes()
    blocks = _PEM_BLOCK.findall(data)
    entries: dict[bytes, str] = {}
    for block in blocks:
        with warnings.catch_warnings():  # some public roots have a negative serial number
            warnings.simplefilter("ignore")
            root = x509.load_pem_x509_certificate(block)
        entries.setdefault(spki_sha256(root), root.subject.rfc4514_string())
    lines = [
        '"""SHA-256 digests of the SubjectPublicKeyInfo of well-known public root CAs.',
        "",
        "Generated, do not edit: regenerate with",
        f"``python -m asgi_mtls.validation.public_roots {bundle}``",
        f"(source: {len(blocks)} certificates, {len(entries)} keys; file SHA-256",
        f"{hashlib.sha256(data).hexdigest()}).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Final",
        "",
        "PUBLIC_ROOT_SPKI_SHA256: Final = frozenset(",
        "    bytes.fromhex(digest)",
        "    for digest in (",
    ]
    for digest, subject in sorted(entries.items()):
        comment = "        # " + subject.encode("ascii", "backslashreplace").decode("ascii")
        lines.append(comment if len(comment) <= 100 else comment[:97] + "...")
        lines.append(f'        "{digest.hex()}",')
    lines += ["    )", ")", ""]
    return "\n".join(lines), len(entries)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asgi_mtls.validation.public_roots",
        description="Regenerate the public-root digests from a PEM CA bundle.",
    )
    parser.add_argument("bundle", nargs="?", default=DEFAULT_BUNDLE, type=Path)
    parser.add_argument("--output", type=Path, default=_DATA_MODULE)
    args = parser.parse_args(argv)
    source, count = render(args.bundle)
    args.output.write_text(source, encoding="utf-8")
    print(f"wrote {count} digests to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
