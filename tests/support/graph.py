"""The Graph simulator as the Graph tests meet it: its data file, the day the data is read on, and the
`[exchange]` section that points a GraphSource at it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pbxsync.sync.config import ExchangeConfig
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.graph_server import GraphSimulator

MAILBOXES = Path(__file__).resolve().parents[1] / "data" / "mailboxes.json"
MAILBOXES_NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)  # the data file's relative times are read as of then


def graph_config(sim: GraphSimulator, **overrides: Any) -> ExchangeConfig:
    settings: dict[str, Any] = dict(
        backend="graph", tenant_id=sim.app.tenant_id, client_id=sim.app.client_id,
        client_secret=Secret(sim.app.client_secret), authority=sim.authority, graph_endpoint=sim.graph_endpoint,
        ca_file=sim.tls.ca_file, max_connections=2)
    settings.update(overrides)
    return ExchangeConfig(**settings)
