"""TOML tables into frozen dataclasses, collecting every problem with its key path instead of stopping.

The builder walks a dataclass's fields: a missing field without default is "required", a key no field
has is an "unknown key" (a typo should not silently do nothing), a value of the wrong type says what was
expected. Field types read specially: `Secret` accepts the key itself or `<key>_file`, `<key>_env`,
`<key>_command`; `ListenAddress` accepts "HOST:PORT" ("[IPv6]:PORT"); an optional field (`X | None`)
is None when given "" (off); a `list[str]` also accepts one string. Fields whose metadata is
`NOT_A_KEY` are set by the loader, never read from the file.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, Field, fields, is_dataclass
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from pbxsync.sync.errors import SecretError
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.secrets import SECRET_SOURCES, Secret, read_secret

NOT_A_KEY = {"key": False}


def is_key(f: Field[Any]) -> bool:
    """Whether a config dataclass field is a key of the TOML file."""
    return f.metadata.get("key", True) is not False


T = TypeVar("T")


def _describe(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


class TableBuilder:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def build(self, cls: type[T], data: object, path: str) -> T | None:
        if not isinstance(data, dict):
            self.problems.append(f"{path or 'top level'}: expected a table, got {_describe(data)}")
            return None
        hints = get_type_hints(cls)
        known: set[str] = set()
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if not is_key(f):
                continue
            key = f"{path}.{f.name}" if path else f.name
            hint = hints[f.name]
            if hint is Secret:
                known.update(f.name + s for s in SECRET_SOURCES)
                secret = self._secret(data, f.name, key)
                if secret is not None:
                    values[f.name] = secret
                continue
            known.add(f.name)
            if f.name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    self.problems.append(f"{key}: required")
                continue
            converted = self._convert(hint, data[f.name], key)
            if converted is not _INVALID:
                values[f.name] = converted
        for extra in sorted(set(data) - known):
            where = f"{path}.{extra}" if path else extra
            self.problems.append(f"{where}: unknown key")
        try:
            return cls(**values)
        except TypeError:
            return None  # a required field was missing; already reported

    def _secret(self, data: dict[str, Any], name: str, key: str) -> Secret | None:
        given = [s for s in SECRET_SOURCES if name + s in data]
        if not given:
            return None
        if len(given) > 1:
            self.problems.append(f"{key}: give only one of " + ", ".join(name + s for s in given))
            return None
        spec = data[name + given[0]]
        if not isinstance(spec, str):
            self.problems.append(f"{key}{given[0]}: expected a string, got {_describe(spec)}")
            return None
        try:
            return read_secret(given[0], spec, key)
        except SecretError as exc:
            self.problems.append(str(exc))
            return None

    def _convert(self, hint: Any, value: object, key: str) -> Any:
        origin = get_origin(hint)
        if hint is ListenAddress:
            if not isinstance(value, str):
                self.problems.append(f"{key}: expected a string like \"127.0.0.1:389\", got {_describe(value)}")
                return _INVALID
            try:
                return ListenAddress.parse(value)
            except ValueError as exc:
                self.problems.append(f"{key}: {exc}")
                return _INVALID
        if is_dataclass(hint) and isinstance(hint, type):
            built = self.build(hint, value, key)
            return _INVALID if built is None else built
        if origin is list:
            (item_hint,) = get_args(hint)
            if not isinstance(value, list):
                if item_hint is str and isinstance(value, str):
                    return [value]  # `email = "a@b"` is a one-element list
                self.problems.append(f"{key}: expected a list, got {_describe(value)}")
                return _INVALID
            items = [self._convert(item_hint, v, f"{key}[{i}]") for i, v in enumerate(value)]
            return _INVALID if any(i is _INVALID for i in items) else items
        if origin in (types.UnionType, typing.Union):
            if value == "" and type(None) in get_args(hint):
                return None  # a blank optional setting is off
            return self._convert(next(a for a in get_args(hint) if a is not type(None)), value, key)
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if hint in (str, int, bool, float) and (type(value) is not hint):
            self.problems.append(f"{key}: expected {_describe(hint())}, got {_describe(value)}")
            return _INVALID
        return value


_INVALID = object()
