"""A reload that moves a listener binds the new address before it closes the old one (issue 14)."""

from __future__ import annotations

import socket
from pathlib import Path

from aiohttp import web

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.daemon.service import ServiceSpec, SiteService
from pbxsync.plugin.daemon.supervisor import BackoffPolicy, Supervisor
from pbxsync.sync.http_site import Site, start_site


def answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


class Listener(SiteService):
    """Listens on a Unix socket; notes whether the address it replaces still answered when it bound."""

    def __init__(self, path: Path, previous: Path | None, seen: list[bool]) -> None:
        async def bind() -> Site:
            if previous is not None:
                seen.append(answers(previous))
            return await start_site(web.Application(), str(path))

        super().__init__("phonebook", bind)


def spec(path: Path, previous: Path | None, seen: list[bool]) -> ServiceSpec:
    return ServiceSpec("phonebook", lambda: Listener(path, previous, seen), str(path), binds=(str(path),))


async def test_the_new_address_is_bound_while_the_old_one_still_answers(tmp_path: Path) -> None:
    old, new = tmp_path / "old.sock", tmp_path / "new.sock"
    seen: list[bool] = []
    sup = Supervisor(FakeClock(), BackoffPolicy())
    await sup.start([spec(old, None, seen)])
    assert answers(old)
    assert await sup.apply([spec(new, old, seen)]) == ["~phonebook"]
    assert seen == [True]  # the old listener was still up when the new one bound
    assert answers(new)
    assert sup.status()[0]["ok"] is True
    await sup.stop()


async def test_a_move_to_an_address_that_cannot_be_bound_keeps_the_old_listener(tmp_path: Path) -> None:
    old = tmp_path / "old.sock"
    (tmp_path / "a-file").write_text("")
    unusable = tmp_path / "a-file" / "new.sock"  # its "directory" is a file: nothing can bind there
    seen: list[bool] = []
    sup = Supervisor(FakeClock(), BackoffPolicy())
    await sup.start([spec(old, None, seen)])
    assert await sup.apply([spec(unusable, old, seen)]) == ["!phonebook"]
    assert answers(old) and sup.status()[0]["ok"] is True  # still serving where it was
    await sup.stop()
