"""What a validation answers, as a value tests can compare: the one helper the validation
tests share (``outcome``), and its strict form for tests that expect a refusal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

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


def reason_of(*args: Any, **kwargs: Any) -> RejectionReason:
    """The reason of :func:`outcome` (same arguments); the test fails if it is accepted."""
    result = outcome(*args, **kwargs)
    assert result != "accepted", "expected a refusal, the certificate was accepted"
    return RejectionReason(result)
