"""The Exchange backends pbxsync knows, by the name `[exchange] backend` gives.

A new backend is its module (a `Backend` subclass) plus its line in `_BUILT_IN`; the config loader,
`sources.factory` and `pbxsync check` find it here. Tests register throw-away backends with `register`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pbxsync.sync.errors import ConfigError
from pbxsync.sync.sources.backend import Backend
from pbxsync.sync.sources.ews_backend import EWS
from pbxsync.sync.sources.graph_backend import GRAPH

if TYPE_CHECKING:
    from pbxsync.sync.config import Config

_BUILT_IN: tuple[Backend, ...] = (EWS, GRAPH)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # it names the table [exchange.<name>] too
_backends: dict[str, Backend] = {b.name: b for b in _BUILT_IN}


def backend_named(name: str) -> Backend | None:
    return _backends.get(name)


def backend_names() -> list[str]:
    return list(_backends)


def backend_for(config: Config) -> Backend:
    """The backend of a validated config (a config that did not pass `parse_config` may name none)."""
    backend = _backends.get(config.exchange.backend)
    if backend is None:
        raise ConfigError([f"exchange.backend: no backend is named {config.exchange.backend!r}"], config.path)
    return backend


def register(backend: Backend) -> None:
    if not _NAME.match(backend.name):
        raise ValueError(f"backend name {backend.name!r}: lower-case letters, digits and _, starting with a letter")
    if backend.name in _backends:
        raise ValueError(f"a backend named {backend.name!r} is already registered")
    _backends[backend.name] = backend


def unregister(name: str) -> None:
    if any(b.name == name for b in _BUILT_IN):
        raise ValueError(f"the built-in backend {name!r} cannot be removed")
    _backends.pop(name, None)
