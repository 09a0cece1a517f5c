"""The EWS calendar window is complete or it fails: an item Exchange could not return never just vanishes
(the engine deletes stored occurrences a complete window no longer holds)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from exchangelib import errors as ews

from pbxsync.sync.config import parse_config
from pbxsync.sync.errors import SourceAccessError
from pbxsync.sync.sources.ews import EwsSource

START = datetime(2026, 11, 27, tzinfo=UTC)


class _View:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def only(self, *fields: str) -> list[Any]:
        return self.items


def _account(items: list[Any]) -> Any:
    calendar = SimpleNamespace(view=lambda start, end: _View(items))
    return SimpleNamespace(calendar=calendar, fetch=lambda ids, only_fields: [], primary_smtp_address="a@b")


def _item(item_id: str) -> Any:
    tz = SimpleNamespace(key="UTC", ms_id="UTC")
    return SimpleNamespace(
        id=item_id, changekey="ck", uid=f"uid-{item_id}", subject="s", location="PBX", start=START,
        end=START + timedelta(hours=1), _start_timezone=tz, is_all_day=False, is_cancelled=False,
        type="Single", recurrence_id=None, organizer=None, required_attendees=None,
        optional_attendees=None, resources=None)


def _source() -> EwsSource:
    config = parse_config({"exchange": {"server": "http://127.0.0.1:1/EWS/Exchange.asmx", "username": "svc@x",
                                        "password": "pw"},
                           "users": [{"extension": "101", "email": "a@b"}]})
    return EwsSource(config.exchange, config.users)


def test_a_complete_view_maps_every_item() -> None:
    window = _source()._fetch_window(_account([_item("1"), _item("2")]), START, START + timedelta(days=1))
    assert [o.item_id for o in window.occurrences] == ["1", "2"]


async def test_an_item_exchange_failed_to_return_fails_the_whole_window() -> None:
    source = _source()
    slot = SimpleNamespace(account=_account([_item("1"), ews.ErrorItemNotFound("gone"), _item("2")]),
                           semaphore=asyncio.Semaphore(1))

    async def fake_slot(mailbox: str) -> Any:
        return slot

    source._slot = fake_slot  # type: ignore[method-assign]
    with pytest.raises(SourceAccessError):
        await source.calendar_window("a@b", START, START + timedelta(days=1))
