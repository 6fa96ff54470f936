"""What a validation answers, as a value tests can compare: the one helper the validation
tests share (``outcome``), and its strict form for tests that expect a refusal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pytest
from cryptography import x509

from asgi_mtls import CertificateRejected, CertificateValidator, RejectionReason

Presented = x509.Certificate | bytes


def outcome(
    validator: CertificateValidator,
    leaf: Presented,
    chain: Iterable[Presented] = (),
    *,
    at: dt.datetime | None = None,
) -> str:
    """``"accepted"`` or the rejection's reason code (``"untrusted"``, ``"weak_key"``, ...)."""
    try:
        validator.validate(leaf, list(chain), at=at)
    except CertificateRejected as exc:
        return exc.reason.value
    return "accepted"


def reason_of(
    validator: CertificateValidator,
    leaf: Presented,
    chain: Iterable[Presented] = (),
    *,
    at: dt.datetime | None = None,
) -> RejectionReason:
    """The reason ``validator`` refuses ``leaf`` with; the test fails if it accepts it."""
    with pytest.raises(CertificateRejected) as info:
        validator.validate(leaf, list(chain), at=at)
    return info.value.reason
