"""The stylesheet and scripts under /static/: read from the package once, served from memory.

Only the files that ship in plugin/web/static are served (no path is ever joined from a request, so
nothing outside can be reached), with their type and a short cache lifetime. No CDN: all of it ships.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from aiohttp import web

TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png"}
MAX_AGE = 3600


def static_dir() -> Path:
    return Path(str(resources.files("pbxsync.plugin.web") / "static"))


def load_static() -> dict[str, tuple[bytes, str, str]]:
    """name -> (content, content type, ETag)."""
    files: dict[str, tuple[bytes, str, str]] = {}
    for path in sorted(static_dir().iterdir()):
        content_type = TYPES.get(path.suffix)
        if content_type is not None and path.is_file():
            body = path.read_bytes()
            files[path.name] = (body, content_type, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
    return files


def static_routes() -> list[web.RouteDef]:
    files = load_static()

    async def serve(request: web.Request) -> web.StreamResponse:
        found = files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, content_type, etag = found
        headers = {"ETag": etag, "Cache-Control": f"max-age={MAX_AGE}"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type=content_type, charset="utf-8" if content_type.startswith("text")
                            else None, headers=headers)

    return [web.get("/static/{name}", serve)]
