"""Trust hot reload: roots, intermediates, pins and CRL files change without a restart,
atomically, a bad file keeps the old set, and every change moves the generation."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest
from cryptography.hazmat.primitives import serialization

import asgi_mtls.validation.validator as validation_module
from asgi_mtls import CertificateValidator
from asgi_mtls.testing import CertificateAuthority
from asgi_mtls.validation.revocation import RevocationChecker
from tests.validate import outcome


def rewrite(path, text: str) -> None:
    """Replace a file's content and make sure its mtime changes (coarse file systems)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


@pytest.fixture
def cas():
    old, new = CertificateAuthority("Old Root"), CertificateAuthority("New Root")
    return old, new, old.issue_client("old-client"), new.issue_client("new-client")


def test_reload_swaps_the_roots_and_bumps_the_generation(tmp_path, cas):
    old, new, old_client, new_client = cas
    roots = tmp_path / "roots.pem"
    rewrite(roots, old.pem)
    validator = CertificateValidator(roots)
    assert outcome(validator, new_client.certificate) == "untrusted"
    assert validator.reload() is False  # nothing changed: no new generation
    assert validator.generation == 0
    rewrite(roots, old.pem + new.pem)  # rotation: both roots for a while
    assert validator.reload() is True
    assert validator.generation == 1
    assert outcome(validator, new_client.certificate) == "accepted"
    assert outcome(validator, old_client.certificate) == "accepted"
    rewrite(roots, new.pem)
    assert validator.reload_if_changed() is True
    assert validator.generation == 2
    assert outcome(validator, old_client.certificate) == "untrusted"
    assert validator.trust_roots == (new.certificate,)


@pytest.mark.parametrize("content", ["garbage", "", "-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_a_bad_new_file_keeps_the_old_set(tmp_path, cas, caplog, content):
    old, _, old_client, _ = cas
    roots = tmp_path / "roots.pem"
    rewrite(roots, old.pem)
    validator = CertificateValidator(roots)
    rewrite(roots, content)
    with caplog.at_level(logging.ERROR, logger="asgi_mtls"):
        assert validator.reload() is False
    assert "trust material not reloaded, keeping the previous set" in caplog.text
    assert validator.generation == 0
    assert outcome(validator, old_client.certificate) == "accepted"
    # Fixed later: picked up by the next check.
    rewrite(roots, old.pem)
    validator.reload_if_changed()
    assert outcome(validator, old_client.certificate) == "accepted"


def test_a_missing_file_keeps_the_old_set(tmp_path, cas):
    old, _, old_client, _ = cas
    roots = tmp_path / "roots.pem"
    rewrite(roots, old.pem)
    validator = CertificateValidator(roots)
    roots.unlink()
    assert validator.reload_if_changed() is False
    assert outcome(validator, old_client.certificate) == "accepted"


def test_a_bad_file_at_startup_is_an_error(tmp_path):
    roots = tmp_path / "roots.pem"
    roots.write_text("garbage")
    with pytest.raises(ValueError):
        CertificateValidator(roots)


def test_intermediates_and_pins_reload(tmp_path):
    root = CertificateAuthority("Reload Root")
    first, second = root.intermediate("First CA"), root.intermediate("Second CA")
    alice, bob = first.issue_client("alice"), second.issue_client("bob")
    intermediates = tmp_path / "intermediates.pem"
    pins = tmp_path / "pins.txt"
    rewrite(intermediates, first.pem)
    rewrite(pins, alice.fingerprint_sha256 + "\n")
    validator = CertificateValidator(
        root.certificate, intermediates=intermediates, pinned_certificates=pins
    )
    assert outcome(validator, alice.certificate) == "accepted"
    assert outcome(validator, bob.certificate) == "untrusted"
    rewrite(intermediates, first.pem + second.pem)
    assert validator.reload_if_changed()
    assert outcome(validator, bob.certificate) == "not_pinned"
    rewrite(pins, f"{alice.fingerprint_sha256}\n{bob.fingerprint_sha256}\n")
    assert validator.reload_if_changed()
    assert outcome(validator, bob.certificate) == "accepted"
    rewrite(pins, "not a pin\n")  # invalid: the old pins stay
    assert validator.reload_if_changed() is False
    assert outcome(validator, bob.certificate) == "accepted"


def test_a_validation_in_progress_keeps_its_snapshot(tmp_path, monkeypatch):
    # The swap happens in the middle of a validation (after path building): that
    # validation finishes with the old material, the next one uses the new.
    root = CertificateAuthority("Snapshot Root")
    alice, bob = root.issue_client("alice"), root.issue_client("bob")
    pins = tmp_path / "pins.txt"
    rewrite(pins, alice.fingerprint_sha256)
    validator = CertificateValidator(root.certificate, pinned_certificates=pins)
    real_check = validation_module.leaf_san_problem
    swapped = []

    def swap_midway(leaf, subject=None):
        if not swapped:
            rewrite(pins, bob.fingerprint_sha256)
            swapped.append(validator.reload())
        return real_check(leaf, subject)

    monkeypatch.setattr(validation_module, "leaf_san_problem", swap_midway)
    assert outcome(validator, alice.certificate) == "accepted"  # old pins, start to end
    assert swapped == [True]
    assert outcome(validator, alice.certificate) == "not_pinned"
    assert outcome(validator, bob.certificate) == "accepted"


def test_reload_also_reloads_crl_files(tmp_path):
    root = CertificateAuthority("CRL Reload Root")
    carol = root.issue_client("carol")
    crl = tmp_path / "root.crl"
    crl.write_bytes(root.crl(revoked=[]).public_bytes(serialization.Encoding.PEM))
    validator = CertificateValidator(
        root.certificate, revocation=RevocationChecker(crl="hard-fail", crl_files=[crl])
    )
    assert outcome(validator, carol.certificate) == "accepted"
    generation = validator.generation
    root.revoke(carol)
    crl.write_bytes(root.crl().public_bytes(serialization.Encoding.PEM))
    assert validator.reload() is True
    assert validator.generation > generation
    assert outcome(validator, carol.certificate) == "revoked"


@pytest.mark.anyio
@pytest.mark.timeout(20)
async def test_background_polling_picks_up_changes(tmp_path, cas):
    old, new, _, new_client = cas
    roots = tmp_path / "roots.pem"
    rewrite(roots, old.pem)
    validator = CertificateValidator(roots, reload_interval=0.05)
    await validator.start()
    await validator.start()  # idempotent
    try:
        rewrite(roots, old.pem + new.pem)
        while validator.generation == 0:
            await asyncio.sleep(0.02)
        assert outcome(validator, new_client.certificate) == "accepted"
    finally:
        await validator.aclose()


def test_reload_interval_must_be_positive(cas):
    with pytest.raises(ValueError, match="reload_interval"):
        CertificateValidator(cas[0].certificate, reload_interval=0)


def test_in_memory_roots_never_change(cas):
    old, _, old_client, _ = cas
    validator = CertificateValidator(old.certificate)
    assert validator.reload() is False
    assert validator.reload_if_changed() is False
    assert outcome(validator, old_client.certificate) == "accepted"


@pytest.mark.anyio
@pytest.mark.timeout(20)
@pytest.mark.parametrize("content", ["garbage", ""])
async def test_garbage_while_polling_keeps_the_old_set_and_logs_once(
    tmp_path, cas, caplog, content
):
    # The file is replaced while the app serves and stays broken for many polls: the old
    # roots keep working and the error is logged once, not once per poll.
    old, new, old_client, new_client = cas
    roots = tmp_path / "roots.pem"
    rewrite(roots, old.pem)
    validator = CertificateValidator(roots, reload_interval=0.01)
    polls = 0
    real_reload_if_changed = validator.reload_if_changed

    def counting() -> bool:
        nonlocal polls
        polls += 1
        return real_reload_if_changed()

    validator.reload_if_changed = counting
    await validator.start()
    try:
        with caplog.at_level(logging.INFO, logger="asgi_mtls"):
            rewrite(roots, content)
            start = polls
            while polls < start + 20:
                await asyncio.sleep(0.01)
                assert outcome(validator, old_client.certificate) == "accepted"
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1
            assert "trust material not reloaded, keeping the previous set" in errors[0].getMessage()
            assert validator.generation == 0
            # Fixed later: picked up by the next poll, without further errors.
            rewrite(roots, old.pem + new.pem)
            while validator.generation == 0:
                await asyncio.sleep(0.01)
        assert outcome(validator, new_client.certificate) == "accepted"
        assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    finally:
        await validator.aclose()
