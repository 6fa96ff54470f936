"""Front-end configurations for the proxies asgi-mtls runs behind, from templates in the package.

One template per proxy (``templates/``, read with :mod:`importlib.resources`), rendered for the
caller's certificate files, listen address and upstream by :func:`render`.  The same function
serves ``asgi-mtls proxy-config`` (issue #11) and the end-to-end tests, which run every
rendered configuration with the real proxy in front of uvicorn (``tests/e2e/test_proxies.py``,
issue #12): what a user prints is what was tested.

Each configuration terminates mutual TLS, asks for (``require_client_cert=False``) or demands
a client certificate, and forwards it in the header of the matching
:class:`~asgi_mtls.sources.HeaderSource` format under that format's default names, replacing
or deleting any copy the client sent.  The app must still believe those headers only from
the proxy: ``trusted_proxies`` with the proxy's address, or, with ``upstream`` an
``https://`` URL and the proxy's own certificate (``upstream_cert``), by that certificate
(:class:`~asgi_mtls.sources.proxies.ProxyCertificate`).

Placeholders are ``@NAME@``; every one in a template must be given a value and no ``@NAME@``
may remain, so a template and this module cannot drift apart silently.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath
from typing import Final, Literal
from urllib.parse import urlsplit

__all__ = [
    "PROXIES",
    "XFCC_MODES",
    "ProxySettings",
    "Upstream",
    "command",
    "file_name",
    "header_format",
    "render",
    "template",
]

Proxy = Literal["nginx", "haproxy", "caddy", "apache", "envoy", "traefik"]
#: The proxies :func:`render` knows, in the order the docs list them.
PROXIES: Final[tuple[Proxy, ...]] = ("nginx", "haproxy", "caddy", "apache", "envoy", "traefik")

#: Envoy's ``forward_client_cert_details`` values.  Only SANITIZE_SET belongs at the edge;
#: APPEND_FORWARD behind an Envoy that sanitizes; the others let a client's XFCC through
#: (``docs/deploy/envoy.md``).
XFCC_MODES: Final = (
    "SANITIZE_SET",
    "APPEND_FORWARD",
    "SANITIZE",
    "FORWARD_ONLY",
    "ALWAYS_FORWARD_ONLY",
)

#: The HeaderSource format each proxy's configuration writes.
_FORMATS: Final[dict[str, str]] = {proxy: proxy for proxy in PROXIES}

_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
_ALONE = re.compile(r"^[ \t]*@([A-Z_]+)@\n", re.MULTILINE)
_TOKEN = re.compile(r"[A-Za-z0-9._:/\[\]-]+")


def header_format(proxy: str) -> str:
    """The :data:`~asgi_mtls.sources.HEADER_FORMATS` name the proxy's configuration writes."""
    _check_proxy(proxy)
    return _FORMATS[proxy]


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where the proxy sends requests: ``http://host:port``, ``https://host:port`` (mutual TLS
    to the app) or ``unix:/path`` (nginx only)."""

    scheme: Literal["http", "https", "unix"]
    host: str
    port: int
    path: str = ""

    @classmethod
    def parse(cls, text: str) -> Upstream:
        if text.startswith("unix:"):
            path = text.removeprefix("unix:")
            if not PurePosixPath(path).is_absolute():
                raise ValueError(f"upstream {text!r}: a Unix socket needs an absolute path")
            return cls("unix", "", 0, path)
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
            raise ValueError(
                f"upstream {text!r}: give http://HOST:PORT, https://HOST:PORT or unix:/PATH"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"upstream {text!r}: no path, query or fragment")
        scheme: Literal["http", "https"] = "https" if parts.scheme == "https" else "http"
        return cls(scheme, parts.hostname, parts.port)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix:{self.path}"
        return f"{self.scheme}://{self.address}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ProxySettings:
    """What a rendered configuration is made of.

    :param cert: the server certificate the proxy presents to clients (PEM).  HAProxy reads
        the private key from this file too: pass one file holding both, and no ``key``.
    :param key: the server certificate's private key (every proxy but HAProxy).
    :param client_ca: the CA certificates whose clients the proxy accepts (PEM bundle; include
        intermediates the clients do not send).  The app validates again against its own roots.
    :param listen: ``HOST:PORT`` the proxy listens on.
    :param upstream: the app, see :class:`Upstream`.
    :param require_client_cert: refuse clients without a certificate in the handshake; by
        default they get through and the app answers 401 where a route needs one.
    :param forward_failed: nginx and Apache ``optional_no_ca``, HAProxy ``ca-ignore-err all
        crt-ignore-err all``: forward certificates the proxy failed to verify, with its
        verdict, which the app refuses (``proxy_verify_failed``).  Other proxies have no such
        mode.
    :param upstream_cert: the proxy's own certificate for an ``https://`` upstream (mutual TLS
        to the app, so the app can trust the proxy by it).  HAProxy and Apache: certificate
        and key in this one file.
    :param upstream_key: its private key (nginx, Caddy, Envoy).
    :param upstream_ca: the CA that issued the app's server certificate.
    :param upstream_name: the name the app's server certificate must carry (and the SNI).
    :param state_dir: where the proxy keeps its pid file, logs and temporary files (nginx,
        Apache); it must exist.
    :param xfcc_mode: Envoy's ``forward_client_cert_details`` (:data:`XFCC_MODES`).
    :param user: Apache only: the ``User``/``Group`` to drop to when started as root.
    :param apache_modules: Apache only: the directory of its modules (Debian's by default).
    """

    cert: str
    key: str | None = None
    client_ca: str
    listen: str = "0.0.0.0:8443"
    upstream: str = "http://127.0.0.1:8000"
    require_client_cert: bool = False
    forward_failed: bool = False
    upstream_cert: str | None = None
    upstream_key: str | None = None
    upstream_ca: str | None = None
    upstream_name: str = "localhost"
    state_dir: str = "/var/lib/asgi-mtls-proxy"
    xfcc_mode: str = "SANITIZE_SET"
    user: tuple[str, str] | None = None
    apache_modules: str = "/usr/lib/apache2/modules"

    def listen_address(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen {self.listen!r}: give HOST:PORT")
        return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - the documented default


def template(name: str) -> str:
    """The text of one template file of this package (``"nginx.conf"``, ...)."""
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


def _check_proxy(proxy: str) -> None:
    if proxy not in PROXIES:
        raise ValueError(f"unknown proxy {proxy!r}; choose one of {', '.join(PROXIES)}")


def _fill(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``@NAME@``; a placeholder without a value, or a value never used, is a
    bug in this module and raises."""
    used: set[str] = set()

    def whole_line(match: re.Match[str]) -> str:  # an empty fragment leaves no blank line
        name = match.group(1)
        if values.get(name) == "":
            used.add(name)
            return ""
        return match.group(0)

    text = _ALONE.sub(whole_line, text)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template placeholder @{name}@ has no value")
        used.add(name)
        return values[name]

    filled = _PLACEHOLDER.sub(value, text)
    unused = set(values) - used
    if unused:
        raise KeyError(f"values without a placeholder: {sorted(unused)}")
    return filled


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else line for line in text.rstrip("\n").split("\n"))


def _token(value: str, what: str) -> str:
    """A file path or address as it goes into a configuration: no spaces, quotes, braces or
    semicolons that would end a directive (paths with those are refused, not quoted)."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r}: use a path or address made of letters, digits and . _ - / :"
        )
    return value


def command(proxy: str, settings: ProxySettings, config_path: str) -> list[str]:
    """How to run ``proxy`` with ``settings``' configuration written to ``config_path``
    (Traefik takes the listen address on the command line; the file is its dynamic part)."""
    _check_proxy(proxy)
    if proxy == "traefik":
        host, port = settings.listen_address()
        return [
            "traefik",
            f"--entryPoints.asgi-mtls.address={_listen(host, port)}",
            f"--providers.file.filename={config_path}",
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
        ]
    return [*_COMMANDS[proxy], config_path]


_COMMANDS: Final[dict[str, tuple[str, ...]]] = {
    "nginx": ("nginx", "-c"),
    "haproxy": ("haproxy", "-f"),
    "caddy": ("caddy", "run", "--adapter", "caddyfile", "--config"),
    "apache": ("apache2", "-f"),
    "envoy": ("envoy", "-c"),
}


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _upstream_tls(proxy: str, settings: ProxySettings, upstream: Upstream) -> dict[str, str]:
    """The values of a configuration's upstream-TLS fragment."""
    if upstream.scheme != "https":
        if settings.upstream_cert or settings.upstream_key or settings.upstream_ca:
            raise ValueError("upstream_cert, upstream_key and upstream_ca need an https upstream")
        return {}
    if settings.upstream_cert is None or settings.upstream_ca is None:
        raise ValueError(
            "an https upstream needs upstream_cert (the proxy's certificate for the app) and "
            "upstream_ca (the CA of the app's server certificate)"
        )
    one_file = proxy in ("haproxy", "apache")
    if one_file and settings.upstream_key is not None:
        raise ValueError(
            f"{proxy} reads its upstream key from upstream_cert: pass one PEM file holding the "
            "certificate and its key (cat proxy.pem proxy.key > proxy-bundle.pem), no upstream_key"
        )
    if not one_file and settings.upstream_key is None:
        raise ValueError(f"{proxy} needs upstream_key with upstream_cert")
    values = {
        "UPSTREAM_CERT": _token(settings.upstream_cert, "upstream_cert"),
        "UPSTREAM_CA": _token(settings.upstream_ca, "upstream_ca"),
        "UPSTREAM_NAME": _token(settings.upstream_name, "upstream_name"),
    }
    if not one_file:
        assert settings.upstream_key is not None
        values["UPSTREAM_KEY"] = _token(settings.upstream_key, "upstream_key")
    return values


def render(proxy: str, settings: ProxySettings, *, path: str | None = None) -> str:
    """The configuration of ``proxy`` for ``settings`` (``ValueError`` for settings that proxy
    cannot express).  ``path``: where it will be saved, for the command line in its header
    comment (default ``/etc/asgi-mtls/<proxy>.<ext>``)."""
    _check_proxy(proxy)
    host, port = settings.listen_address()
    upstream = Upstream.parse(settings.upstream)
    if upstream.scheme == "unix" and proxy != "nginx":
        raise ValueError(f"a Unix-socket upstream is generated for nginx only, not {proxy}")
    if settings.forward_failed and proxy not in ("nginx", "apache", "haproxy"):
        raise ValueError(f"{proxy} has no mode that forwards certificates it failed to verify")
    if settings.forward_failed and settings.require_client_cert:
        raise ValueError("forward_failed and require_client_cert exclude each other")
    if settings.xfcc_mode != "SANITIZE_SET" and proxy != "envoy":
        raise ValueError("xfcc_mode applies to envoy only")
    if settings.xfcc_mode not in XFCC_MODES:
        raise ValueError(f"xfcc_mode {settings.xfcc_mode!r}: one of {', '.join(XFCC_MODES)}")
    if (settings.key is None) != (proxy == "haproxy"):
        raise ValueError(
            "haproxy reads the key from the certificate file: pass one PEM file holding both "
            "(cat server.pem server.key > server-bundle.pem) and no key"
            if proxy == "haproxy"
            else f"{proxy} needs key, the server certificate's private key"
        )
    tls = _upstream_tls(proxy, settings, upstream)
    listen = _listen(host, port)
    run = shlex.join(command(proxy, settings, path or f"/etc/asgi-mtls/{file_name(proxy)}"))
    _token(settings.state_dir, "state_dir")  # checked for every proxy, used by some
    values = {
        "COMMAND": run,
        "CERT": _token(settings.cert, "cert"),
        "CLIENT_CA": _token(settings.client_ca, "client_ca"),
    }
    if settings.key is not None:
        values["KEY"] = _token(settings.key, "key")
    values.update(_BUILDERS[proxy](settings, host, port, listen, upstream, tls))
    return _fill(template(_TEMPLATES[proxy]), values)


_SUFFIX: Final = {
    "nginx": ".conf",
    "haproxy": ".cfg",
    "caddy": ".caddy",
    "apache": ".conf",
    "envoy": ".yaml",
    "traefik": ".yaml",
}
_TEMPLATES: Final = {proxy: proxy + suffix for proxy, suffix in _SUFFIX.items()}


def file_name(proxy: str) -> str:
    """The conventional name of ``proxy``'s configuration file (Envoy reads YAML only from a
    ``.yaml`` file, Caddy's adapter is named on the command line)."""
    _check_proxy(proxy)
    return _TEMPLATES[proxy]


_Builder = Callable[[ProxySettings, str, int, str, Upstream, dict[str, str]], dict[str, str]]


def _fragment(name: str, tls: dict[str, str], prefix: str) -> str:
    """An upstream-TLS fragment, indented, or nothing for a plain upstream.  A fragment may
    leave a value out (Apache checks the name of the upstream URL's host itself)."""
    if not tls:
        return ""
    text = template(name)
    used = {key: value for key, value in tls.items() if f"@{key}@" in text}
    return _indent(_fill(text, used), prefix)


def _nginx(
    s: ProxySettings, host: str, port: int, listen: str, up: Upstream, tls: dict[str, str]
) -> dict[str, str]:
    verify = "on" if s.require_client_cert else "optional_no_ca" if s.forward_failed else "optional"
    target = f"http://unix:{_token(up.path, 'upstream')}:" if up.scheme == "unix" else str(up)
    return {
        "STATE": _token(s.state_dir, "state_dir"),
        "LISTEN": listen,
        "VERIFY": verify,
        "UPSTREAM": target,
        "UPSTREAM_TLS": _fragment("nginx-upstream-tls.conf", tls, " " * 12),
        "LOCATION": _indent(template("nginx-location.conf"), " " * 12),
    }


def _haproxy(
    s: ProxySettings, host: str, port: int, listen: str, up: Upstream, tls: dict[str, str]
) -> dict[str, str]:
    upstream_tls = ""
    if tls:
        upstream_tls = (
            f" ssl crt {tls['UPSTREAM_CERT']} ca-file {tls['UPSTREAM_CA']} verify required"
            f" sni str({tls['UPSTREAM_NAME']}) verifyhost {tls['UPSTREAM_NAME']}"
        )
    return {
        "LISTEN": listen,
        "VERIFY": "required" if s.require_client_cert else "optional",
        "IGNORE_ERR": " ca-ignore-err all crt-ignore-err all" if s.forward_failed else "",
        "UPSTREAM": up.address,
        "UPSTREAM_TLS": upstream_tls,
    }


def _caddy(
    s: ProxySettings, host: str, port: int, listen: str, up: Upstream, tls: dict[str, str]
) -> dict[str, str]:
    return {
        "PORT": str(port),
        "HOST": host,
        "VERIFY": "require_and_verify" if s.require_client_cert else "verify_if_given",
        "UPSTREAM": up.address,
        "UPSTREAM_TLS": _fragment("caddy-upstream-tls.caddy", tls, "\t\t"),
    }


def _apache(
    s: ProxySettings, host: str, port: int, listen: str, up: Upstream, tls: dict[str, str]
) -> dict[str, str]:
    verify = (
        "require" if s.require_client_cert else "optional_no_ca" if s.forward_failed else "optional"
    )
    user = ""
    if s.user is not None:
        user = f"User {_token(s.user[0], 'user')}\nGroup {_token(s.user[1], 'group')}"
    return {
        "STATE": _token(s.state_dir, "state_dir"),
        "USER": user,
        "MODULES": _token(s.apache_modules, "apache_modules"),
        "LISTEN": listen,
        "VERIFY": verify,
        "UPSTREAM": str(up),
        "UPSTREAM_TLS": _fragment("apache-upstream-tls.conf", tls, " " * 4),
    }


def _envoy(
    s: ProxySettings, host: str, port: int, listen: str, up: Upstream, tls: dict[str, str]
) -> dict[str, str]:
    return {
        "HOST": host,
        "PORT": str(port),
        "REQUIRE": "true" if s.require_client_cert else "false",
        "XFCC_MODE": s.xfcc_mode,
        "CLUSTER_TYPE": "STATIC" if _is_ip(up.host) else "STRICT_DNS",
        "UPSTREAM_TLS": _fragment("envoy-upstream-tls.yaml", tls, " " * 4),
        "UPSTREAM_HOST": _token(up.host, "upstream"),
        "UPSTREAM_PORT": str(up.port),
    }


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _traefik(
    s: ProxySettings, host: str, port: int, listen: str, up: Upstream, tls: dict[str, str]
) -> dict[str, str]:
    if tls:
        raise ValueError("an https upstream is not generated for traefik")
    verify = "RequireAndVerifyClientCert" if s.require_client_cert else "VerifyClientCertIfGiven"
    return {"VERIFY": verify, "UPSTREAM": str(up)}


_BUILDERS: Final[dict[str, _Builder]] = {
    "nginx": _nginx,
    "haproxy": _haproxy,
    "caddy": _caddy,
    "apache": _apache,
    "envoy": _envoy,
    "traefik": _traefik,
}
