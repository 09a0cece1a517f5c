"""Starting the phonebook's aiohttp application on a `ListenAddress`.

One small function on purpose: the daemon's shared aiohttp helper (`pbxsync.sync.http_site`, TLS and
connection limits for every HTTP listener) is being written at the same time; when it lands, this is the
one place that changes.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from pbxsync.sync.listen import ListenAddress

KEEPALIVE_SECONDS = 15.0  # phones fetch once and go; an idle connection holds a descriptor


async def start_site(app: web.Application, listen: ListenAddress, tls: ssl.SSLContext | None
                     ) -> tuple[web.AppRunner, list[tuple[str, int]]]:
    """Serve `app` on `listen` (HTTPS with `tls`); the runner (for `cleanup()`) and the bound addresses."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_SECONDS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, listen.host, listen.port, ssl_context=tls, backlog=512, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, [(str(a[0]), int(a[1])) for a in runner.addresses]
