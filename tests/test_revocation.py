"""Revocation: CRLs (files, distribution points) and OCSP, with a real CA hierarchy and a real
HTTP responder on 127.0.0.1.  validate() must never touch the network: it answers from memory
and schedules background fetches."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.server
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from asgi_mtls import CertificateRejected, CertificateValidator, RejectionReason
from asgi_mtls.testing import CertificateAuthority, IssuedCertificate, RevocationServer
from asgi_mtls.validation.revocation import RevocationChecker, RevocationPolicy, build_ocsp_request
from tests.certificates import extensions_of, reissue
from tests.validate import reason_of

pytestmark = pytest.mark.anyio

NOW = dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def no_network() -> Iterator[None]:
    """Fail the test if anything opens a connection inside the block."""

    def refuse(*args, **kwargs):
        raise AssertionError("network I/O during validate()")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def crl_file(tmp_path, ca: CertificateAuthority, name: str = "ca.crl", **options):
    path = tmp_path / name
    path.write_bytes(ca.crl(**options).public_bytes(serialization.Encoding.PEM))
    return path


# --- CRL files: no network at all ----------------------------------------------------------


@pytest.fixture(scope="module")
def files_pki():
    root = CertificateAuthority("Revocation Root")
    issuing = root.intermediate("Revocation Issuing CA")
    return root, issuing


def file_validator(root, issuing, paths, *, crl="hard-fail", **options) -> CertificateValidator:
    checker = RevocationChecker(crl=crl, crl_files=paths, **options)
    return CertificateValidator(
        root.certificate, intermediates=[issuing.certificate], revocation=checker
    )


def test_crl_file_revokes_and_clears(tmp_path, files_pki):
    root, issuing = files_pki
    good, bad = issuing.issue_client("good"), issuing.issue_client("bad")
    paths = [
        crl_file(tmp_path, issuing, "issuing.crl", revoked=[bad]),
        crl_file(tmp_path, root, "root.crl", revoked=[]),
    ]
    validator = file_validator(root, issuing, paths)
    verified = validator.validate(good.certificate)
    assert verified.revocation == "good"
    crl = x509.load_pem_x509_crl(paths[0].read_bytes())
    # The result may be reused until the earliest of notAfter and the CRLs' nextUpdate.
    assert verified.expires_at == min(
        crl.next_update_utc, *(c.not_valid_after_utc for c in verified.chain)
    )
    assert reason_of(validator, bad.certificate) is RejectionReason.REVOKED


def test_revoked_is_rejected_under_soft_fail_too(tmp_path, files_pki):
    root, issuing = files_pki
    bad = issuing.issue_client("bad")
    validator = file_validator(
        root, issuing, [crl_file(tmp_path, issuing, revoked=[bad])], crl="soft-fail"
    )
    assert reason_of(validator, bad.certificate) is RejectionReason.REVOKED


def test_revoked_intermediate_is_rejected(tmp_path, files_pki):
    root, _ = files_pki
    issuing = root.intermediate("Soon Revoked CA")
    client = issuing.issue_client("client")
    paths = [
        crl_file(tmp_path, issuing, "issuing.crl", revoked=[]),
        crl_file(tmp_path, root, "root.crl", revoked=[issuing]),
    ]
    validator = file_validator(root, issuing, paths)
    assert reason_of(validator, client.certificate) is RejectionReason.REVOKED
    # With crl_scope="leaf" only the leaf is looked up.
    leaf_only = file_validator(root, issuing, paths, crl_scope="leaf")
    assert leaf_only.validate(client.certificate).revocation == "good"


def test_missing_crl_for_intermediate_under_chain_scope(tmp_path, files_pki):
    root, issuing = files_pki
    client = issuing.issue_client("client")
    paths = [crl_file(tmp_path, issuing, revoked=[])]
    validator = file_validator(root, issuing, paths)
    assert reason_of(validator, client.certificate) is RejectionReason.REVOCATION_UNKNOWN
    assert file_validator(root, issuing, paths, crl_scope="leaf").validate(client.certificate)


def test_forged_crl_is_ignored(tmp_path, files_pki):
    # Same issuer name, wrong key: the CRL does not count, in either direction.
    root, issuing = files_pki
    client = issuing.issue_client("client")
    impostor = CertificateAuthority("Revocation Issuing CA")
    forged = crl_file(tmp_path, issuing, "forged.crl", revoked=[], signing_key=impostor.key)
    root_crl = crl_file(tmp_path, root, "root.crl", revoked=[])
    hard = file_validator(root, issuing, [forged, root_crl])
    assert reason_of(hard, client.certificate) is RejectionReason.REVOCATION_UNKNOWN
    soft = file_validator(root, issuing, [forged, root_crl], crl="soft-fail")
    assert soft.validate(client.certificate).revocation == "unknown"


def test_crl_of_another_ca_does_not_apply(tmp_path, files_pki):
    root, issuing = files_pki
    client = issuing.issue_client("client")
    other = CertificateAuthority("Other CA")
    paths = [crl_file(tmp_path, other, "other.crl", revoked=[client.certificate.serial_number])]
    paths.append(crl_file(tmp_path, root, "root.crl", revoked=[]))
    validator = file_validator(root, issuing, paths)
    # The serial is listed, but by a CRL of someone else: unknown, not revoked.
    assert reason_of(validator, client.certificate) is RejectionReason.REVOCATION_UNKNOWN


def test_stale_crl_is_unknown_but_its_revocations_still_count(tmp_path, files_pki):
    root, issuing = files_pki
    good, bad = issuing.issue_client("good"), issuing.issue_client("bad")
    old = NOW - dt.timedelta(days=3)
    paths = [
        crl_file(tmp_path, issuing, "issuing.crl", revoked=[bad], this_update=old),
        crl_file(tmp_path, root, "root.crl", revoked=[]),
    ]
    validator = file_validator(root, issuing, paths)
    assert reason_of(validator, good.certificate) is RejectionReason.REVOCATION_UNKNOWN
    assert reason_of(validator, bad.certificate) is RejectionReason.REVOKED


def test_crl_validity_window_edges(tmp_path, files_pki):
    root, issuing = files_pki
    client = issuing.issue_client("client")
    this_update = NOW.replace(microsecond=0)
    next_update = this_update + dt.timedelta(hours=1)
    paths = [
        crl_file(
            tmp_path, issuing, "i.crl", revoked=[], this_update=this_update, next_update=next_update
        ),
        crl_file(
            tmp_path, root, "r.crl", revoked=[], this_update=this_update, next_update=next_update
        ),
    ]
    validator = file_validator(root, issuing, paths)
    assert validator.validate(client.certificate, at=next_update).revocation == "good"
    late = next_update + dt.timedelta(seconds=1)
    assert reason_of(validator, client.certificate, at=late) is RejectionReason.REVOCATION_UNKNOWN


@pytest.mark.parametrize(
    ("extension", "critical", "message"),
    [
        (x509.DeltaCRLIndicator(1), True, "delta CRLs are not supported"),
        (
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.9"), b"\x05\x00"),
            True,
            "unknown critical CRL extension",
        ),
        (
            x509.IssuingDistributionPoint(None, None, False, False, None, True, False),
            True,
            "indirect or partial CRLs are not supported",
        ),
    ],
)
def test_unsupported_crls_are_refused_at_startup(tmp_path, files_pki, extension, critical, message):
    root, issuing = files_pki
    path = crl_file(tmp_path, issuing, revoked=[], extensions=[(extension, critical)])
    with pytest.raises(ValueError, match=message):
        file_validator(root, issuing, [path])


def test_crl_from_the_future_is_refused(tmp_path, files_pki):
    root, issuing = files_pki
    path = crl_file(tmp_path, issuing, revoked=[], this_update=NOW + dt.timedelta(hours=2))
    with pytest.raises(ValueError, match="in the future"):
        file_validator(root, issuing, [path])


def test_crl_scope_from_issuing_distribution_point(tmp_path, files_pki):
    root, issuing = files_pki
    client = issuing.issue_client("client", crl_urls=["http://crl.example/part1.crl"])
    root_crl = crl_file(tmp_path, root, "root.crl", revoked=[])
    ca_only = x509.IssuingDistributionPoint(None, None, False, True, None, False, False)

    def part(url: str) -> x509.IssuingDistributionPoint:
        """A partitioned CRL's scope: the certificates naming ``url``."""
        name = [x509.UniformResourceIdentifier(url)]
        return x509.IssuingDistributionPoint(name, None, False, False, None, False, False)

    other_part = part("http://crl.example/part2.crl")
    this_part = part("http://crl.example/part1.crl")
    for idp, covered in ((ca_only, False), (other_part, False), (this_part, True)):
        path = crl_file(tmp_path, issuing, revoked=[], extensions=[(idp, True)])
        validator = file_validator(root, issuing, [path, root_crl], use_distribution_points=False)
        if covered:
            assert validator.validate(client.certificate).revocation == "good"
        else:
            reason = reason_of(validator, client.certificate)
            assert reason is RejectionReason.REVOCATION_UNKNOWN


def test_issuer_without_crl_sign_cannot_vouch(tmp_path):
    root = CertificateAuthority("No CRL Sign Root")
    # Re-sign the root with keyUsage keyCertSign only (no cRLSign).
    cert_sign_only = x509.KeyUsage(True, False, False, False, False, True, False, False, False)
    extensions = [
        (cert_sign_only if isinstance(value, x509.KeyUsage) else value, critical)
        for value, critical in extensions_of(root.certificate)
    ]
    root.certificate = reissue(root.certificate, root.key, extensions=extensions)
    client = root.issue_client("client")
    validator = CertificateValidator(
        root.certificate,
        revocation=RevocationChecker(crl="hard-fail", crl_files=[crl_file(tmp_path, root)]),
    )
    assert reason_of(validator, client.certificate) is RejectionReason.REVOCATION_UNKNOWN


def test_policies_are_validated():
    with pytest.raises(ValueError, match="revocation policy"):
        RevocationChecker(crl="strict")
    with pytest.raises(ValueError, match="http"):
        RevocationChecker(crl="hard-fail", crl_urls=["ldap://ldap.example/crl"])
    assert RevocationChecker(ocsp=RevocationPolicy.SOFT_FAIL).ocsp_policy == "soft-fail"


def test_all_checks_off_is_not_checked(files_pki):
    root, issuing = files_pki
    client = issuing.issue_client("client")
    validator = CertificateValidator(
        root.certificate, intermediates=[issuing.certificate], revocation=RevocationChecker()
    )
    assert validator.validate(client.certificate).revocation == "not_checked"


def test_no_event_loop_means_no_fetch_and_a_policy_answer(files_pki):
    # Used synchronously (a CLI, a thread without a loop): nothing can be fetched in the
    # background, the answer is the policy's, and nothing blocks.
    root, issuing = files_pki
    client = issuing.issue_client("client", crl_urls=["http://127.0.0.1:9/never.crl"])
    checker = RevocationChecker(crl="hard-fail", crl_scope="leaf")
    validator = CertificateValidator(
        root.certificate, intermediates=[issuing.certificate], revocation=checker
    )
    with no_network():
        assert reason_of(validator, client.certificate) is RejectionReason.REVOCATION_UNKNOWN
    assert checker.fetch_attempts == 0


# --- over HTTP: CRL distribution points and OCSP -------------------------------------------


@dataclass
class Hierarchy:
    server: RevocationServer
    root: CertificateAuthority
    issuing: CertificateAuthority
    crl_url: str
    ocsp_url: str

    def client(self, name: str, *, crl: bool = True, ocsp: bool = True) -> IssuedCertificate:
        return self.issuing.issue_client(
            name,
            crl_urls=[self.crl_url] if crl else [],
            ocsp_urls=[self.ocsp_url] if ocsp else [],
        )

    def validator(self, **options) -> tuple[CertificateValidator, RevocationChecker]:
        options.setdefault("timeout", 2.0)
        checker = RevocationChecker(**options)
        validator = CertificateValidator(
            self.root.certificate, intermediates=[self.issuing.certificate], revocation=checker
        )
        return validator, checker


@pytest.fixture
def hierarchy() -> Iterator[Hierarchy]:
    with RevocationServer() as server:
        root = CertificateAuthority("HTTP Revocation Root")
        issuing = root.intermediate("HTTP Revocation Issuing CA")
        crl_url = server.serve_crl("/issuing.crl", issuing)
        ocsp_url = server.serve_ocsp("/ocsp", issuing)
        yield Hierarchy(server, root, issuing, crl_url, ocsp_url)


@pytest.fixture
async def closing():
    """Registers checkers to aclose() at the end of the test (cancels background fetches)."""
    checkers: list[RevocationChecker] = []
    yield checkers.append
    for checker in checkers:
        await checker.aclose()


async def test_crl_distribution_point_hard_fail_then_revoked(hierarchy, closing):
    validator, checker = hierarchy.validator(crl="hard-fail", crl_scope="leaf")
    closing(checker)
    alice = hierarchy.client("alice", ocsp=False)
    generation = validator.generation
    with no_network():
        # Nothing known yet: refused at once, and a fetch is scheduled in the background.
        assert reason_of(validator, alice.certificate) is RejectionReason.REVOCATION_UNKNOWN
    assert checker.fetch_attempts == 1
    await eventually(lambda: validator.generation != generation)
    verified = validator.validate(alice.certificate)
    assert verified.revocation == "good"
    # The middleware cached that acceptance; revocation must move the generation so that it
    # drops the cache, and the next validation must say revoked.
    cached_generation = validator.generation
    hierarchy.issuing.revoke(alice)
    await checker.refresh()
    assert validator.generation > cached_generation
    assert reason_of(validator, alice.certificate) is RejectionReason.REVOKED


async def test_crl_distribution_point_soft_fail_accepts_and_logs(hierarchy, closing, caplog):
    validator, checker = hierarchy.validator(crl="soft-fail", crl_scope="leaf")
    closing(checker)
    bob = hierarchy.client("bob", ocsp=False)
    hierarchy.issuing.revoke(bob)
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"), no_network():
        assert validator.validate(bob.certificate).revocation == "unknown"
    assert "revocation status unknown, accepted (soft-fail)" in caplog.text
    generation = validator.generation
    await eventually(lambda: validator.generation != generation)
    assert reason_of(validator, bob.certificate) is RejectionReason.REVOKED


async def test_one_fetch_per_source_while_in_flight(hierarchy, closing):
    validator, checker = hierarchy.validator(crl="soft-fail", crl_scope="leaf")
    closing(checker)
    clients = [hierarchy.client(f"c{i}", ocsp=False) for i in range(5)]
    for client in clients:
        validator.validate(client.certificate)
    assert checker.fetch_attempts == 1  # all share one distribution point
    await eventually(lambda: validator.generation > 0)
    assert hierarchy.server.requests == [("GET", "/issuing.crl")]


async def test_prefetch_then_validate(hierarchy, closing):
    validator, checker = hierarchy.validator(crl="hard-fail", ocsp="hard-fail", crl_scope="leaf")
    closing(checker)
    carol = hierarchy.client("carol")
    path = [carol.certificate, hierarchy.issuing.certificate, hierarchy.root.certificate]
    await checker.prefetch(path)
    assert checker.fetch_attempts == 2  # the CRL and the OCSP response
    with no_network():
        verified = validator.validate(carol.certificate)
    assert verified.revocation == "good"
    assert checker.fetch_attempts == 2  # nothing was missing, nothing scheduled


async def test_chain_scope_with_crl_urls_for_an_intermediate(hierarchy, closing):
    # The intermediate has no distribution point: the root's CRL comes from crl_urls.
    root_crl = hierarchy.server.serve_crl("/root.crl", hierarchy.root)
    validator, checker = hierarchy.validator(crl="hard-fail", crl_urls=[root_crl])
    closing(checker)
    carol = hierarchy.client("carol", ocsp=False)
    await checker.refresh()
    await checker.prefetch([carol.certificate, hierarchy.issuing.certificate])
    assert validator.validate(carol.certificate).revocation == "good"
    hierarchy.root.revoke(hierarchy.issuing)
    await checker.refresh()
    assert reason_of(validator, carol.certificate) is RejectionReason.REVOKED


async def test_explicit_crl_urls_are_fetched_by_start(hierarchy, closing):
    root_crl = hierarchy.server.serve_crl("/root.crl", hierarchy.root)
    validator, checker = hierarchy.validator(
        crl="hard-fail", crl_urls=[root_crl, hierarchy.crl_url], use_distribution_points=False
    )
    closing(checker)
    dave = hierarchy.client("dave", crl=False, ocsp=False)
    await validator.start()
    await eventually(lambda: validator.generation >= 2)
    assert validator.validate(dave.certificate).revocation == "good"
    await validator.aclose()


async def test_rollback_to_an_older_crl_is_refused(hierarchy, closing):
    validator, checker = hierarchy.validator(crl="hard-fail", crl_scope="leaf")
    closing(checker)
    erin = hierarchy.client("erin", ocsp=False)
    hierarchy.issuing.revoke(erin)
    newer = hierarchy.issuing.crl(number=10)
    older = hierarchy.issuing.crl(number=9, revoked=[], this_update=NOW - dt.timedelta(hours=1))
    hierarchy.server.publish_crl("/issuing.crl", newer)
    await checker.prefetch([erin.certificate, hierarchy.issuing.certificate])
    assert reason_of(validator, erin.certificate) is RejectionReason.REVOKED
    hierarchy.server.publish_crl("/issuing.crl", older)
    await checker.refresh()
    assert reason_of(validator, erin.certificate) is RejectionReason.REVOKED


async def test_oversized_crl_is_refused(hierarchy, closing):
    validator, checker = hierarchy.validator(crl="hard-fail", crl_scope="leaf", max_crl_bytes=64)
    closing(checker)
    gina = hierarchy.client("gina", ocsp=False)
    await checker.prefetch([gina.certificate, hierarchy.issuing.certificate])
    assert reason_of(validator, gina.certificate) is RejectionReason.REVOCATION_UNKNOWN


# --- OCSP ---------------------------------------------------------------------------------


async def test_ocsp_good_revoked_unknown(hierarchy, closing):
    validator, checker = hierarchy.validator(ocsp="hard-fail")
    closing(checker)
    good, revoked = hierarchy.client("good"), hierarchy.client("revoked")
    hierarchy.issuing.revoke(revoked, reason=x509.ReasonFlags.key_compromise)
    # A certificate the responder never heard of (same issuer key, unknown serial).
    stranger = hierarchy.client("stranger")
    del hierarchy.issuing.issued[stranger.certificate.serial_number]
    chain = (hierarchy.issuing.certificate, hierarchy.root.certificate)
    for client in (good, revoked, stranger):
        await checker.prefetch([client.certificate, *chain])
    verified = validator.validate(good.certificate)
    assert verified.revocation == "good"
    # nextUpdate is a day after the response was made (now), not after this module was imported
    assert verified.expires_at <= dt.datetime.now(dt.UTC) + dt.timedelta(days=1, minutes=1)
    assert reason_of(validator, revoked.certificate) is RejectionReason.REVOKED
    assert reason_of(validator, stranger.certificate) is RejectionReason.REVOCATION_UNKNOWN
    soft, soft_checker = hierarchy.validator(ocsp="soft-fail")
    closing(soft_checker)
    await soft_checker.prefetch([stranger.certificate, *chain])
    await soft_checker.prefetch([revoked.certificate, *chain])
    assert soft.validate(stranger.certificate).revocation == "unknown"
    assert reason_of(soft, revoked.certificate) is RejectionReason.REVOKED


async def test_ocsp_delegated_responder(hierarchy, closing):
    responder = hierarchy.issuing.ocsp_responder()
    hierarchy.server.serve_ocsp("/ocsp", hierarchy.issuing, responder=responder)
    validator, checker = hierarchy.validator(ocsp="hard-fail")
    closing(checker)
    ivy = hierarchy.client("ivy")
    await checker.prefetch([ivy.certificate, hierarchy.issuing.certificate])
    assert validator.validate(ivy.certificate).revocation == "good"


@pytest.mark.parametrize("case", ["no_ocsp_eku", "other_ca_responder", "forged_key"])
async def test_ocsp_unauthorised_signers_are_refused(hierarchy, closing, case):
    issuing = hierarchy.issuing
    if case == "no_ocsp_eku":
        options = {"responder": issuing.issue_client("not-a-responder")}
    elif case == "other_ca_responder":
        options = {"responder": CertificateAuthority("elsewhere").ocsp_responder()}
    else:
        options = {"signing_key": CertificateAuthority("forger").key}
    hierarchy.server.serve_ocsp("/ocsp", issuing, **options)
    validator, checker = hierarchy.validator(ocsp="hard-fail")
    closing(checker)
    jack = hierarchy.client("jack")
    issuing.revoke(jack) if case == "forged_key" else None
    await checker.prefetch([jack.certificate, issuing.certificate])
    # Not believed: neither "good" nor (for the forged key) "revoked".
    assert reason_of(validator, jack.certificate) is RejectionReason.REVOCATION_UNKNOWN


async def test_ocsp_answer_for_another_certificate_is_refused(hierarchy, closing):
    kate, other = hierarchy.client("kate"), hierarchy.client("other")
    hierarchy.server.serve(
        "/ocsp",
        lambda body: hierarchy.issuing.ocsp_response(other).public_bytes(
            serialization.Encoding.DER
        ),
    )
    validator, checker = hierarchy.validator(ocsp="hard-fail")
    closing(checker)
    await checker.prefetch([kate.certificate, hierarchy.issuing.certificate])
    assert reason_of(validator, kate.certificate) is RejectionReason.REVOCATION_UNKNOWN


@pytest.mark.parametrize(
    ("options", "accepted"),
    [
        ({"this_update": NOW - dt.timedelta(days=3)}, False),  # nextUpdate already passed
        ({"this_update": NOW + dt.timedelta(hours=1)}, False),  # from the future
        ({"no_next_update": True}, True),  # RFC 5019: newer info always available
        ({"nonce": b"0123456789abcdef"}, False),  # not the nonce that was sent
    ],
)
async def test_ocsp_freshness_and_nonce(hierarchy, closing, options, accepted):
    hierarchy.server.serve_ocsp("/ocsp", hierarchy.issuing, **options)
    validator, checker = hierarchy.validator(ocsp="hard-fail", ocsp_nonce=True)
    closing(checker)
    leo = hierarchy.client("leo")
    await checker.prefetch([leo.certificate, hierarchy.issuing.certificate])
    if accepted:
        assert validator.validate(leo.certificate).revocation == "good"
    else:
        assert reason_of(validator, leo.certificate) is RejectionReason.REVOCATION_UNKNOWN


async def test_ocsp_nonce_echoed_is_accepted(hierarchy, closing):
    validator, checker = hierarchy.validator(ocsp="hard-fail", ocsp_nonce=True)
    closing(checker)
    mia = hierarchy.client("mia")
    await checker.prefetch([mia.certificate, hierarchy.issuing.certificate])
    assert validator.validate(mia.certificate).revocation == "good"


async def test_ocsp_without_responder_url(hierarchy, closing):
    validator, checker = hierarchy.validator(ocsp="hard-fail")
    closing(checker)
    ned = hierarchy.client("ned", ocsp=False)
    assert reason_of(validator, ned.certificate) is RejectionReason.REVOCATION_UNKNOWN
    assert checker.fetch_attempts == 0
    # An explicit responder URL replaces the certificate's.
    override, override_checker = hierarchy.validator(ocsp="hard-fail", ocsp_url=hierarchy.ocsp_url)
    closing(override_checker)
    await override_checker.prefetch([ned.certificate, hierarchy.issuing.certificate])
    assert override.validate(ned.certificate).revocation == "good"


async def test_ocsp_hard_fail_refusal_is_lifted_by_a_generation_bump(hierarchy, closing):
    validator, checker = hierarchy.validator(ocsp="hard-fail")
    closing(checker)
    olga = hierarchy.client("olga")
    generation = validator.generation
    assert reason_of(validator, olga.certificate) is RejectionReason.REVOCATION_UNKNOWN
    # The middleware caches that refusal; the answer landing must invalidate it.
    await eventually(lambda: validator.generation != generation)
    assert validator.validate(olga.certificate).revocation == "good"


async def test_ocsp_soft_fail_good_answer_does_not_churn_the_generation(hierarchy, closing):
    validator, checker = hierarchy.validator(ocsp="soft-fail")
    closing(checker)
    pat = hierarchy.client("pat")
    assert validator.validate(pat.certificate).revocation == "unknown"
    await eventually(lambda: checker.fetch_attempts == 1 and not checker.pending_fetches)
    # Accepted before, good now: nothing a cache holds became wrong, so no invalidation.
    assert validator.generation == 0
    assert validator.validate(pat.certificate).revocation == "good"


# --- faults: every broken endpoint, under every policy, for CRL and OCSP -------------------


class FloodServer:
    """An HTTP endpoint on 127.0.0.1 that answers any request with 200 and ``total`` bytes of
    junk, streamed (with ``declare_length``, behind a truthful content-length; without, until
    it closes), and records how much it managed to send before the client hung up."""

    def __init__(self, total: int, *, declare_length: bool) -> None:
        self.total = total
        self.sent = 0
        self.completed = False
        self.done = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.flood()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.flood()

            def flood(self) -> None:
                chunk = b"\x30\x82" + b"\xa5" * (64 * 1024 - 2)
                try:
                    self.send_response(200)
                    if declare_length:
                        self.send_header("content-length", str(owner.total))
                    self.send_header("connection", "close")
                    self.end_headers()
                    while owner.sent < owner.total:
                        self.wfile.write(chunk)
                        owner.sent += len(chunk)
                    owner.completed = True
                except OSError:  # the client hung up: what it wanted to see
                    pass
                finally:
                    self.close_connection = True
                    owner.done.set()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/flood"

    def __enter__(self) -> FloodServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


HUNDRED_MB = 100 * 1024 * 1024
FAULTS = ["refused", "hang", "http-error", "garbage", "huge-streamed", "huge-declared", "wrong-key"]
#: What a validation answers while the revocation source is broken, per policy.
VERDICT = {"off": "not_checked", "soft-fail": "unknown", "hard-fail": "revocation_unknown"}
#: However slow the endpoint, a validation answers from memory at once.
IMMEDIATE = 0.25


def broken_endpoint(
    fault: str, kind: str, hierarchy: Hierarchy, stack: contextlib.ExitStack
) -> tuple[str, FloodServer | None]:
    """The URL of an endpoint with ``fault`` for ``kind`` ("crl" or "ocsp"), and the flood
    server behind it for the huge answers."""
    server, issuing = hierarchy.server, hierarchy.issuing
    if fault == "refused":
        return RevocationServer.refused_url("/broken"), None
    if fault in ("huge-streamed", "huge-declared"):
        flood = FloodServer(HUNDRED_MB, declare_length=fault == "huge-declared")
        return stack.enter_context(flood).url, flood
    server.hang = fault == "hang"
    if fault == "http-error":
        server.status = 500
    if fault == "garbage":
        return server.serve("/broken", lambda _: b"\x30\x82\x01\x00 not DER" * 8), None
    # The real data, but signed by another key for "wrong-key".
    forger = CertificateAuthority("forger").key if fault == "wrong-key" else None
    if kind == "crl":
        return server.serve_crl("/broken", issuing, signing_key=forger), None
    return server.serve_ocsp("/broken", issuing, signing_key=forger), None


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["crl", "ocsp"])
@pytest.mark.parametrize("policy", ["off", "soft-fail", "hard-fail"])
@pytest.mark.parametrize("fault", FAULTS)
async def test_broken_revocation_endpoints(hierarchy, closing, caplog, fault, policy, kind):
    """Whatever is wrong with the endpoint, no validation waits for it, it is fetched at most
    once (then backed off), a huge answer is not read to the end, and the answer is the
    policy's: never "good", never a hang, never an exception other than the policy's."""
    with contextlib.ExitStack() as stack:
        url, flood = broken_endpoint(fault, kind, hierarchy, stack)
        options = {"crl": policy, "crl_scope": "leaf"} if kind == "crl" else {"ocsp": policy}
        validator, checker = hierarchy.validator(timeout=0.5, **options)
        closing(checker)
        client = hierarchy.issuing.issue_client(
            f"{fault}-{policy}-{kind}",
            crl_urls=[url] if kind == "crl" else [],
            ocsp_urls=[url] if kind == "ocsp" else [],
        )

        def answer() -> str:
            started = time.monotonic()
            with no_network():
                try:
                    result = validator.validate(client.certificate).revocation
                except CertificateRejected as exc:
                    result = exc.reason.value
            assert time.monotonic() - started < IMMEDIATE, "validate() waited"
            return result

        with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
            assert answer() == VERDICT[policy]
            # While the fetch is under way (a hanging or flooding endpoint holds it for up
            # to the timeout), requests keep being answered from memory.
            while checker.pending_fetches:
                assert answer() == VERDICT[policy]
                await asyncio.sleep(0.02)
            for _ in range(20):
                assert answer() == VERDICT[policy]
        if policy == "off":
            assert checker.fetch_attempts == 0
            assert hierarchy.server.requests == []
            assert flood is None or flood.sent == 0
            return
        assert checker.fetch_attempts == 1  # failed once, then backing off
        if fault in ("hang", "http-error", "garbage", "wrong-key"):
            assert len(hierarchy.server.requests) == 1
        assert "revocation fetch failed" in caplog.text
        if policy == "soft-fail":
            assert "revocation status unknown, accepted (soft-fail)" in caplog.text
        if flood is not None:
            assert flood.done.wait(10)
            # The client stopped reading at its limit (what it buffers), well before the end;
            # the rest is what the sockets hold.
            limit = checker.max_crl_bytes if kind == "crl" else checker.max_ocsp_bytes
            assert not flood.completed
            assert flood.sent <= limit + 16 * 1024 * 1024


async def test_fetch_scheduled_from_a_worker_thread(hierarchy, closing):
    validator, checker = hierarchy.validator(crl="hard-fail", crl_scope="leaf")
    closing(checker)
    await checker.start()
    sam = hierarchy.client("sam", ocsp=False)
    generation = validator.generation

    def in_thread() -> str:
        try:
            return validator.validate(sam.certificate).revocation
        except CertificateRejected as exc:
            return exc.reason.value

    assert await asyncio.to_thread(in_thread) == "revocation_unknown"
    await eventually(lambda: validator.generation != generation)
    assert await asyncio.to_thread(in_thread) == "good"


async def test_crl_files_reload_on_change(tmp_path, closing):
    root = CertificateAuthority("Reload Root")
    tina = root.issue_client("tina")
    path = crl_file(tmp_path, root, revoked=[])
    checker = RevocationChecker(crl="hard-fail", crl_files=[path], poll_interval=0.05)
    closing(checker)
    validator = CertificateValidator(root.certificate, revocation=checker)
    assert validator.validate(tina.certificate).revocation == "good"
    await checker.start()
    generation = validator.generation
    root.revoke(tina)
    path.write_bytes(root.crl().public_bytes(serialization.Encoding.PEM) + b"\n")
    await eventually(lambda: validator.generation != generation)
    assert reason_of(validator, tina.certificate) is RejectionReason.REVOKED
    # A broken file keeps the previous set (and says so in the log).
    generation = validator.generation
    path.write_text("garbage")
    assert checker.reload_files(force=True) is False
    assert validator.generation == generation
    assert reason_of(validator, tina.certificate) is RejectionReason.REVOKED


def test_ocsp_response_helper_round_trip(hierarchy):
    # The testing helper answers for the certificates its CA issued and refuses others.
    uma = hierarchy.client("uma")
    response = hierarchy.issuing.ocsp_response(uma)
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    request = build_ocsp_request(uma.certificate, hierarchy.issuing.certificate)
    foreign = CertificateAuthority("foreign").ocsp_response(request)
    assert foreign.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
