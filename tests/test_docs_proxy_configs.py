"""Every ``$ asgi-mtls proxy-config ...`` example in the docs is followed by exactly what the
command prints, so a page can never show a configuration the tests do not run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from asgi_mtls.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLE = re.compile(
    r"```text\n\$ (asgi-mtls proxy-config [^\n]+)\n```\n\n```[a-z]*\n(.*?)```\n", re.DOTALL
)


def _examples() -> list[tuple[str, str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for command, shown in EXAMPLE.findall(page.read_text()):
            found.append((str(page.relative_to(DOCS)), command, shown))
    return found


def test_every_proxy_has_an_example():
    proxies = {shlex.split(command)[2] for _, command, _ in _examples()}
    assert proxies == {"nginx", "haproxy", "caddy", "apache", "envoy", "traefik"}


@pytest.mark.parametrize(("page", "command", "shown"), _examples(), ids=lambda v: str(v)[:40])
def test_the_page_shows_what_the_command_prints(page, command, shown, capsys):
    assert main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out == shown, f"{page}: regenerate the example after `{command}`"
