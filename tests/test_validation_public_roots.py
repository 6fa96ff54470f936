"""Public CA bundles as client trust roots are refused: the system bundle loaded 144 public
roots silently, and then any public server certificate carrying clientAuth authenticated.

Refused at construction (one line naming the opt-in) and on reload (the old set stays);
accepted only with ``allow_public_roots=True``, which logs a WARNING once."""

from __future__ import annotations

import logging
import os
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import certifi
import pytest
from cryptography import x509

from asgi_mtls import CertificateValidator, MTLSMiddleware
from asgi_mtls.testing import CertificateAuthority
from asgi_mtls.validation.public_roots import MAX_SELF_SIGNED_ROOTS
from asgi_mtls.validation.trust import spki_sha256
from tests.test_trust_reload import rewrite
from tests.validate import outcome

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
OPT_IN = "allow_public_roots=True"

pytestmark = pytest.mark.filterwarnings(
    # Some public roots have a negative serial number; cryptography warns when it loads them.
    "ignore:Parsed a serial number which wasn't positive"
)


def system_bundle() -> Path:
    """Debian's ca-certificates bundle (Mozilla's roots); in CI it must be installed."""
    if not SYSTEM_BUNDLE.exists():
        message = f"{SYSTEM_BUNDLE} is missing: apt-get install ca-certificates"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: this test may not skip)")
        pytest.skip(message)
    return SYSTEM_BUNDLE


BUNDLES = {"debian-ca-certificates": system_bundle, "certifi": lambda: Path(certifi.where())}


def load_bundle(path: Path) -> list[x509.Certificate]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return x509.load_pem_x509_certificates(path.read_bytes())


@pytest.fixture(scope="module")
def private():
    root = CertificateAuthority("Bank Private Clients Root")
    return root, root.issue_client("private-client")


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_public_bundles_are_refused_at_construction(bundle):
    path = BUNDLES[bundle]()
    with pytest.raises(ValueError) as info:
        CertificateValidator(path)
    message = str(info.value)
    assert "\n" not in message
    assert "well-known public root CA(s)" in message
    assert f"pass {OPT_IN} to CertificateValidator" in message
    # The middleware builds its validator at once: the app fails at startup, not per request.
    with pytest.raises(ValueError, match="allow_public_roots"):
        MTLSMiddleware(lambda scope, receive, send: None, trust=path)


def test_each_root_of_the_system_bundle_is_recognised_alone(private):
    roots = load_bundle(system_bundle())
    refused = 0
    for root in roots:
        try:
            CertificateValidator([private[0].certificate, root])
        except ValueError as exc:
            assert "well-known public root" in str(exc)
            refused += 1
    # The data module was generated from this bundle; allow for a newer ca-certificates.
    assert refused >= 0.9 * len(roots), f"only {refused} of {len(roots)} public roots recognised"


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_the_opt_in_accepts_the_bundle_and_warns_once(bundle, private, tmp_path, caplog):
    roots = tmp_path / "roots.pem"
    rewrite(roots, BUNDLES[bundle]().read_text())
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        validator = CertificateValidator(roots, allow_public_roots=True)
        rewrite(roots, roots.read_text() + private[0].pem)
        assert validator.reload() is True
    warned = [r for r in caplog.records if OPT_IN in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    assert outcome(validator, private[1].certificate) == "accepted"
    stranger = CertificateAuthority("Stranger").issue_client("stranger")
    assert outcome(validator, stranger.certificate) == "untrusted"


def test_a_private_root_is_fine(private, caplog):
    root, client = private
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        validator = CertificateValidator(root.certificate)
    assert outcome(validator, client.certificate) == "accepted"
    assert caplog.records == []


def test_one_public_root_among_private_ones_is_refused(private):
    isrg = [c for c in load_bundle(Path(certifi.where())) if "ISRG Root X1" in str(c.subject)]
    assert len(isrg) == 1
    with pytest.raises(ValueError, match=r"1 well-known public root CA\(s\) \(e.g. 'CN=ISRG"):
        CertificateValidator([private[0].certificate, isrg[0]])


@pytest.mark.parametrize("count", [1, 2, MAX_SELF_SIGNED_ROOTS])
def test_a_handful_of_private_roots_is_fine(count):
    roots = [CertificateAuthority(f"Tenant Root {n}") for n in range(count)]
    validator = CertificateValidator([r.certificate for r in roots])
    assert outcome(validator, roots[-1].issue_client("tenant").certificate) == "accepted"


@pytest.mark.parametrize("count", [MAX_SELF_SIGNED_ROOTS + 1, 3 * MAX_SELF_SIGNED_ROOTS])
def test_more_self_signed_roots_than_a_handful_are_refused(count, caplog):
    roots = [CertificateAuthority(f"Tenant Root {n}").certificate for n in range(count)]
    with pytest.raises(ValueError) as info:
        CertificateValidator(roots)
    assert f"holds {count} self-signed roots, more than max_self_signed_roots=8" in str(info.value)
    assert OPT_IN in str(info.value)
    # A deployment with many private roots says so ...
    assert CertificateValidator(roots, max_self_signed_roots=count).trust_roots == tuple(roots)
    # ... or opts in, and is warned.
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        CertificateValidator(roots, allow_public_roots=True)
    assert OPT_IN in caplog.text


def test_only_self_signed_roots_count():
    # Issuing CAs configured as anchors are not a bundle of public roots.
    root = CertificateAuthority("Anchor Parent")
    anchors = [root.intermediate(f"Issuing CA {n}") for n in range(2 * MAX_SELF_SIGNED_ROOTS)]
    validator = CertificateValidator([a.certificate for a in anchors])
    assert outcome(validator, anchors[0].issue_client("c").certificate) == "accepted"


def test_max_self_signed_roots_must_be_positive(private):
    with pytest.raises(ValueError, match="max_self_signed_roots"):
        CertificateValidator(private[0].certificate, max_self_signed_roots=0)


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_a_reload_that_brings_public_roots_in_is_refused(bundle, private, tmp_path, caplog):
    root, client = private
    roots = tmp_path / "roots.pem"
    rewrite(roots, root.pem)
    validator = CertificateValidator(roots)
    rewrite(roots, root.pem + BUNDLES[bundle]().read_text())
    with caplog.at_level(logging.ERROR, logger="asgi_mtls"):
        assert validator.reload_if_changed() is False
        assert validator.reload_if_changed() is False  # unchanged since: not retried
    refusals = [r for r in caplog.records if "keeping the previous set" in r.getMessage()]
    assert len(refusals) == 1 and OPT_IN in refusals[0].getMessage()
    assert validator.generation == 0
    assert validator.trust_roots == (root.certificate,)
    assert outcome(validator, client.certificate) == "accepted"


def test_the_digests_are_regenerated_by_one_command(tmp_path):
    cas = [CertificateAuthority(f"Regenerated Root {n}") for n in range(3)]
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("".join(ca.pem for ca in cas) + cas[0].pem)  # a repeated root
    output = tmp_path / "digests.py"
    command = [sys.executable, "-m", "asgi_mtls.validation.public_roots", str(bundle)]
    result = subprocess.run(
        [*command, "--output", str(output)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert "wrote 3 digests" in result.stderr
    first = output.read_text()
    assert "python -m asgi_mtls.validation.public_roots" in first
    digests = runpy.run_path(str(output))["PUBLIC_ROOT_SPKI_SHA256"]
    assert digests == {spki_sha256(ca.certificate) for ca in cas}
    subprocess.run([*command, "--output", str(output)], check=True, capture_output=True)
    assert output.read_text() == first  # deterministic: regenerating changes nothing
