"""The EWS simulator's HTTP server logs request-thread errors as one line each, never a traceback on stderr."""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from pbxsync.sync.simulator import ews_server
from pbxsync.sync.simulator.ews_server import EwsSimulator, QuietHTTPServer
from pbxsync.sync.simulator.mailboxes import Organisation

LOGGER = ews_server.log.name


def wait_for(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not reached before the deadline"
        time.sleep(0.01)


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


def assert_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    """Neither socketserver's default report nor a traceback reached stdout/stderr. (The log line itself
    may: a logging handler another test left on the root logger can print it, which is fine.)"""
    out, err = capfd.readouterr()
    assert "Traceback" not in err + out
    assert "Exception occurred during processing of request" not in err + out


@pytest.fixture
def sim() -> Iterator[EwsSimulator]:
    with EwsSimulator(Organisation()) as s:
        yield s


def test_reset_connection_is_one_debug_line_and_no_traceback(sim: EwsSimulator, caplog: pytest.LogCaptureFixture,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    conn = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    try:
        # a whole keep-alive exchange first, so the server thread is surely reading this connection
        conn.sendall(b"GET /EWS/Exchange.asmx HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 405 ")
        conn.sendall(b"POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n<s:Env")
    finally:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        conn.close()
    wait_for(lambda: any("went away" in r.getMessage() for r in records(caplog, logging.DEBUG)))
    assert [r.getMessage() for r in records(caplog, logging.DEBUG) if "went away" in r.getMessage()] == [
        "simulator: client 127.0.0.1 went away mid-request (ConnectionResetError)"]
    assert records(caplog, logging.WARNING) == []
    assert_no_traceback(capfd)
    # and the simulator still serves the next client
    client = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    client.request("GET", "/EWS/Exchange.asmx")
    assert client.getresponse().status == 405
    client.close()


class Broken(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        raise ValueError("handler bug")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_other_errors_are_one_warning_line_and_no_traceback(caplog: pytest.LogCaptureFixture,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    server = QuietHTTPServer(("127.0.0.1", 0), Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        client.request("GET", "/")
        with pytest.raises(http.client.RemoteDisconnected):
            client.getresponse()
        client.close()
        wait_for(lambda: bool(records(caplog, logging.WARNING)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert [r.getMessage() for r in records(caplog, logging.WARNING)] == [
        "simulator: request from 127.0.0.1 failed: ValueError: handler bug"]
    assert_no_traceback(capfd)
