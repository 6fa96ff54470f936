"""Roles: named groups of clients, defined once and used on many routes.

A :class:`RoleMap` maps role names to rules.  The middleware (``roles=``) evaluates it once per
distinct certificate, stores the result on the identity (``ClientIdentity.roles``, cached with
it) and adds the names to ``scope["auth"].scopes``, so all of these work unchanged::

    require_client(role("payments-admin"))   # asgi-mtls requirement
    @requires("payments-admin")              # Starlette's own decorator

From Python, a rule is any requirement (strings are exact principals)::

    RoleMap({
        "payments-admin": [principal("spiffe://bank.example/ops"),
                           spiffe_glob("spiffe://bank.example/ns/payments/sa/*")],
        "sre": subject_attribute("OU", "SRE") & issuer("CN=Corp Issuing CA,O=Corp"),
    })

From a file (TOML or JSON, by suffix), each role is one rule table or a list of them.  Keys in
one table must all match (AND); a key given a list matches any of its values (OR); any one
rule of a role grants it::

    [roles.payments-admin]
    spiffe_glob = ["spiffe://bank.example/ns/payments/sa/*"]

    [[roles.sre]]
    issuer = "CN=Corp Issuing CA,O=Corp"
    subject = { OU = "SRE" }

Rule keys: ``principal`` (typed by shape, as in ``require_client``), ``cn`` (the single
common name), ``principal_glob``, ``spiffe_glob``, ``spiffe_prefix``,
``trust_domain``, ``issuer`` (RFC 4514), ``subject`` (a table of attribute → value(s)),
``dns`` (DNS SAN globs), ``group`` (Kubernetes groups), ``fingerprint``, ``spki``.  An
unknown key, an empty rule or a bad value is a :class:`RoleConfigError` when the map is built.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

from asgi_mtls.authorization import certificates, matchers
from asgi_mtls.authorization.requirements import AllOf, AnyOf, Requirement
from asgi_mtls.errors import ConfigurationError
from asgi_mtls.identity import ClientIdentity

__all__ = [
    "RoleConfigError",
    "RoleMap",
    "RoleRequirement",
    "check_role_name",
    "load_roles",
    "role",
]

_ROLE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*")

#: The keys of a rule table in a role file, and the matcher each one builds.
_RULE_KEYS: Final[dict[str, Callable[..., Requirement]]] = {
    "principal": matchers.principal,
    "cn": matchers.cn,
    "principal_glob": matchers.principal_glob,
    "spiffe_glob": matchers.spiffe_glob,
    "spiffe_prefix": matchers.spiffe_prefix,
    "trust_domain": matchers.trust_domain,
    "issuer": certificates.issuer,
    "dns": matchers.dns_name,
    "group": matchers.group,
    "fingerprint": certificates.fingerprint,
    "spki": certificates.spki_pin,
}


def check_role_name(name: object) -> str:
    """``name`` if it is a valid role name (letters, digits, ``. _ : / @ -``, starting with a
    letter or digit; not ``authenticated``, which Starlette's scopes already use)."""
    if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
        raise ValueError(f"invalid role name {name!r}")
    if name == "authenticated":
        raise ValueError("'authenticated' is reserved (every client has it); pick another name")
    return name


class RoleRequirement(matchers.ValueIn):
    """The client has one of ``names`` (``ClientIdentity.roles``, from the role map)."""

    def __init__(self, names: frozenset[str]) -> None:
        super().__init__("role in", attrgetter("roles"), names, pure=True)


def role(*names: str) -> Requirement:
    """The client has one of the roles ``names``, granted by the middleware's ``roles=``
    map.  Roles are also Starlette scopes, so ``@requires("name")`` works too."""
    if not names:
        raise ValueError("at least one role is needed")
    return RoleRequirement(frozenset(check_role_name(name) for name in names))


class RoleConfigError(ConfigurationError):
    """A role map that cannot be used: unreadable file, unknown key, invalid value."""


RoleRules = Requirement | str | Iterable[Requirement | str]


class RoleMap:
    """Role names → rules; ``roles_for(identity)`` is the set of roles a client has.

    ``roles`` maps each name to a requirement, an exact principal string, or a list of these
    (any one grants the role).  Rules may not use :func:`role` (roles are computed from the
    certificate, not from other roles).
    """

    def __init__(self, roles: Mapping[str, RoleRules], *, source: str = "python") -> None:
        self.source = source
        rules: dict[str, Requirement] = {}
        if not isinstance(roles, Mapping):
            raise RoleConfigError(f"{source}: roles must be a mapping of name to rules")
        for name, value in roles.items():
            try:
                check_role_name(name)
                rules[name] = _python_rules(value)
            except (ValueError, TypeError) as exc:
                raise RoleConfigError(f"{source}: role {name!r}: {exc}") from None
        self.rules: Mapping[str, Requirement] = rules

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> RoleMap:
        """Build from the file structure: ``{"roles": {name: rule-table | [rule-table, ...]}}``."""
        if not isinstance(data, Mapping):
            raise RoleConfigError(f"{source}: expected a table with a 'roles' key")
        unknown = set(data) - {"roles"}
        if unknown:
            raise RoleConfigError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
        roles = data.get("roles")
        if not isinstance(roles, Mapping):
            raise RoleConfigError(f"{source}: 'roles' must be a table of role names")
        parsed: dict[str, Requirement] = {}
        for name, value in roles.items():
            tables = value if isinstance(value, list) else [value]
            if not tables:
                raise RoleConfigError(f"{source}: roles.{name}: no rules")
            rules = [
                _file_rule(table, f"{source}: roles.{name}[{index}]")
                for index, table in enumerate(tables)
            ]
            parsed[name] = rules[0] if len(rules) == 1 else AnyOf(*rules)
        return cls(parsed, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RoleMap:
        """Load a ``.toml`` or ``.json`` role file; :class:`RoleConfigError` if unusable."""
        file = Path(path)
        suffix = file.suffix.lower()
        if suffix not in (".toml", ".json"):
            raise RoleConfigError(f"{file}: a role file must end in .toml or .json")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RoleConfigError(f"{file}: cannot read the role file: {exc}") from None
        try:
            data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise RoleConfigError(f"{file}: not valid {suffix[1:].upper()}: {exc}") from None
        return cls.from_dict(data, source=str(file))

    def roles_for(self, identity: ClientIdentity) -> frozenset[str]:
        """The roles ``identity`` has.  A rule that raises does not grant (logged)."""
        return frozenset(name for name, rule in self.rules.items() if rule.allows(identity))

    def describe(self) -> dict[str, str]:
        """Each role name with a one-line description of who has it (for audits)."""
        return {name: rule.describe() for name, rule in self.rules.items()}

    def __contains__(self, name: object) -> bool:
        return name in self.rules

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"RoleMap({sorted(self.rules)}, source={self.source!r})"


def _python_rules(value: RoleRules) -> Requirement:
    items: Sequence[Requirement | str]
    if isinstance(value, Requirement | str):
        items = [value]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise TypeError(f"expected a requirement, a principal or a list of them, not {value!r}")
    if not items:
        raise ValueError("no rules")
    principals = [item for item in items if isinstance(item, str)]
    rules = [item for item in items if isinstance(item, Requirement)]
    if len(principals) + len(rules) != len(items):
        raise TypeError("each rule must be a requirement or an exact principal string")
    if principals:
        rules.insert(0, matchers.principal(*principals))
    for rule in rules:
        if any(isinstance(part, RoleRequirement) for part in rule.walk()):
            raise ValueError("a role rule cannot depend on roles")
    return rules[0] if len(rules) == 1 else AnyOf(*rules)


def _strings(value: object, where: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    strings = [v for v in values if isinstance(v, str)]
    if not values or len(strings) != len(values):
        raise RoleConfigError(f"{where}: expected a string or a non-empty list of strings")
    return strings


def _file_rule(table: object, where: str) -> Requirement:
    if not isinstance(table, Mapping):
        raise RoleConfigError(f"{where}: a rule must be a table of conditions")
    if not table:
        raise RoleConfigError(f"{where}: an empty rule would match every client")
    conditions: list[Requirement] = []
    for key, value in table.items():
        try:
            if key == "subject":
                if not isinstance(value, Mapping) or not value:
                    raise RoleConfigError(f"{where}.subject: expected a table like {{OU = 'SRE'}}")
                for attribute, values in value.items():
                    strings = _strings(values, f"{where}.subject.{attribute}")
                    conditions.append(certificates.subject_attribute(attribute, *strings))
            elif key in _RULE_KEYS:
                conditions.append(_RULE_KEYS[key](*_strings(value, f"{where}.{key}")))
            else:
                known = ", ".join(sorted([*_RULE_KEYS, "subject"]))
                raise RoleConfigError(f"{where}: unknown key {key!r}; use one of {known}")
        except RoleConfigError:
            raise
        except ValueError as exc:
            raise RoleConfigError(f"{where}.{key}: {exc}") from None
    return conditions[0] if len(conditions) == 1 else AllOf(*conditions)


def load_roles(
    value: RoleMap | str | os.PathLike[str] | Mapping[str, Any] | None,
) -> RoleMap | None:
    """The middleware's ``roles=`` option as a :class:`RoleMap`: a map, a file path, or a
    Python mapping of role name to rules."""
    if value is None or isinstance(value, RoleMap):
        return value
    if isinstance(value, str | os.PathLike):
        return RoleMap.from_file(value)
    if isinstance(value, Mapping):
        return RoleMap(value)
    raise TypeError(f"roles must be a RoleMap, a file path or a mapping, not {value!r}")
