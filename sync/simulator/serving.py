"""Running a simulator's HTTP server on a background thread: one lifecycle for the EWS and Graph simulators."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Self


class BackgroundServer:
    """`start()` serves on a daemon thread, `stop()` ends it and closes the socket; also a context manager."""

    def __init__(self, httpd: ThreadingHTTPServer, thread_name: str) -> None:
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread_name = thread_name
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name=self._thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Safe twice and without `start()`: `shutdown()` would wait forever for a loop that never ran."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
