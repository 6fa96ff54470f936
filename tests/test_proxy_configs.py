"""asgi_mtls.proxy_configs and ``asgi-mtls proxy-config``: every template renders for every
combination of settings a proxy can express, refuses what it cannot, and never lets a value
end a directive.  That the rendered files work is proven with the real proxies in
``tests/e2e/test_proxies.py`` (which also compares the command's output with what runs)."""

from __future__ import annotations

import itertools
import os
import re

import pytest

from asgi_mtls.cli import main
from asgi_mtls.proxy_configs import (
    PROXIES,
    XFCC_MODES,
    ProxySettings,
    command,
    header_format,
    render,
)
from asgi_mtls.sources import HeaderSource


def settings(proxy: str, **overrides: object) -> ProxySettings:
    options: dict[str, object] = {
        "cert": "/pki/server.pem",
        "key": None if proxy == "haproxy" else "/pki/server.key",
        "client_ca": "/pki/clients-ca.pem",
        **overrides,
    }
    return ProxySettings(**options)  # type: ignore[arg-type]


def _upstream_tls(proxy: str) -> dict[str, object]:
    return {
        "upstream": "https://127.0.0.1:9443",
        "upstream_cert": "/pki/proxy.pem",
        "upstream_key": None if proxy in ("haproxy", "apache") else "/pki/proxy.key",
        "upstream_ca": "/pki/app-ca.pem",
    }


def _combinations(proxy: str) -> list[dict[str, object]]:
    """Every combination of the settings ``proxy`` supports."""
    choices: list[list[dict[str, object]]] = [
        [{}, {"require_client_cert": True}]
        + ([{"forward_failed": True}] if proxy in ("nginx", "apache", "haproxy") else []),
        [{}, {"listen": "127.0.0.1:443"}, {"listen": "[::1]:8443"}],
        [{}]
        + ([_upstream_tls(proxy)] if proxy != "traefik" else [])
        + ([{"upstream": "unix:/run/app.sock"}] if proxy == "nginx" else []),
        [{"xfcc_mode": mode} for mode in XFCC_MODES] if proxy == "envoy" else [{}],
        [{}, {"user": ("nobody", "nogroup")}] if proxy == "apache" else [{}],
    ]
    return [
        {key: value for part in parts for key, value in part.items()}
        for parts in itertools.product(*choices)
    ]


@pytest.mark.parametrize("proxy", PROXIES)
def test_every_supported_combination_renders_the_headers_of_its_format(proxy):
    source = HeaderSource(header_format(proxy))
    for overrides in _combinations(proxy):
        text = render(proxy, settings(proxy, **overrides))
        assert not re.search(r"@[A-Z_]+@", text), overrides
        lowered = text.lower()
        for name in (source.header, source.chain_header, source.verify_header):
            assert name is None or name in lowered, (overrides, name)
        assert "/pki/server.pem" in text and "/pki/clients-ca.pem" in text
        if "upstream_cert" in overrides:
            assert "/pki/proxy.pem" in text and "/pki/app-ca.pem" in text


@pytest.mark.parametrize(
    ("proxy", "overrides", "message"),
    [
        ("caddy", {"forward_failed": True}, "no mode that forwards"),
        ("envoy", {"forward_failed": True}, "no mode that forwards"),
        ("traefik", {"forward_failed": True}, "no mode that forwards"),
        ("nginx", {"forward_failed": True, "require_client_cert": True}, "exclude each other"),
        ("haproxy", {"upstream": "unix:/run/app.sock"}, "nginx only"),
        ("haproxy", {"key": "/pki/server.key"}, "one PEM file"),
        ("nginx", {"key": None}, "needs key"),
        ("nginx", {"xfcc_mode": "APPEND_FORWARD"}, "envoy only"),
        ("envoy", {"xfcc_mode": "sanitize_set"}, "xfcc_mode"),
        ("nginx", {"upstream": "https://127.0.0.1:9443"}, "needs upstream_cert"),
        ("nginx", {"upstream_ca": "/pki/ca.pem"}, "need an https upstream"),
        ("apache", {**_upstream_tls("nginx")}, "one PEM file"),
        ("traefik", {**_upstream_tls("traefik")}, "not generated for traefik"),
        ("nginx", {"upstream": "127.0.0.1:8000"}, "give http://"),
        ("nginx", {"upstream": "http://127.0.0.1:8000/api"}, "no path"),
        ("nginx", {"upstream": "unix:relative.sock"}, "absolute path"),
        ("nginx", {"listen": "8443"}, "HOST:PORT"),
        ("nginx", {"listen": "0.0.0.0:99999"}, "HOST:PORT"),
    ],
)
def test_settings_a_proxy_cannot_express_are_refused(proxy, overrides, message):
    with pytest.raises(ValueError, match=message):
        render(proxy, settings(proxy, **overrides))


@pytest.mark.parametrize("proxy", PROXIES)
@pytest.mark.parametrize(
    "value",
    [
        "/pki/a b.pem",
        "/pki/a;ssl_verify_client off.pem",
        "/pki/a}.pem",
        "/pki/a{.pem",
        '/pki/a".pem',
        "/pki/a'.pem",
        "/pki/a\n.pem",
        "/pki/a#.pem",
        "/pki/a$x.pem",
        "/pki/a%{X}.pem",
        "/pki/a@CERT@.pem",
    ],
)
def test_no_value_can_end_a_directive(proxy, value):
    """A file name that would end a directive, open a block or a comment, or name a variable
    in any of the proxies' languages is refused, never quoted and hoped for."""
    for field in ("cert", "client_ca", "state_dir"):
        with pytest.raises(ValueError, match=field):
            render(proxy, settings(proxy, **{field: value}))


def test_traefik_is_told_not_to_call_home():
    argv = command("traefik", settings("traefik"), "/etc/traefik/asgi-mtls.yaml")
    assert "--global.checkNewVersion=false" in argv
    assert "--global.sendAnonymousUsage=false" in argv
    assert "--entryPoints.asgi-mtls.address=0.0.0.0:8443" in argv


def test_the_command_prints_what_render_returns_with_absolute_paths(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["proxy-config", "envoy", "--cert", "s.pem", "--key", "s.key", "--client-ca", "ca.pem"]
    assert main(argv) == 0
    absolute = settings(
        "envoy",
        cert=str(tmp_path / "s.pem"),
        key=str(tmp_path / "s.key"),
        client_ca=str(tmp_path / "ca.pem"),
        state_dir=os.path.abspath("/var/lib/asgi-mtls-proxy"),
    )
    assert capsys.readouterr().out == render("envoy", absolute)


def test_the_command_writes_a_file_and_names_it_in_the_run_line(tmp_path, capsys):
    out = tmp_path / "nginx.conf"
    argv = ["proxy-config", "nginx", "--cert", "/s.pem", "--key", "/s.key", "--client-ca", "/c"]
    assert main([*argv, "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"run: nginx -c {out}" in captured.err
    assert f"# Run: nginx -c {out}\n" in out.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["haproxy", "--key", "/s.key"], "one PEM file"),
        (["apache", "--user", "nobody"], "USER:GROUP"),
        (["nginx", "--listen", "nowhere"], "HOST:PORT"),
    ],
)
def test_the_command_reports_bad_settings_in_one_line(argv, message, capsys):
    name, *rest = argv
    assert main(["proxy-config", name, "--cert", "/s.pem", "--client-ca", "/c", *rest]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asgi-mtls: ") and message in err and err.count("\n") == 1


def test_unsafe_envoy_modes_are_not_offered_on_the_command_line(capsys):
    base = ["proxy-config", "envoy", "--cert", "/s", "--key", "/k", "--client-ca", "/c"]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--xfcc-mode", "FORWARD_ONLY"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
