"""Where a listener binds: one type for every listening socket, parsed once when the config is loaded.

Config files write "HOST:PORT", an IPv6 address in brackets ("[::1]:389"). Port 0 means any free port
(tests). The text is hostile until parsed: whitespace, a trailing newline, a bare IPv6 address or a port
beyond 65535 are refused with a message that shows the value.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_LISTEN_RE = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]{2,45}(?:%[0-9A-Za-z_.-]{1,32})?)\]"
                        r"|(?P<host>[0-9A-Za-z.-]{1,253})):(?P<port>[0-9]{1,5})")
_LABEL = re.compile(r"[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?")  # one part of a host name (RFC 1123)


@dataclass(frozen=True)
class ListenAddress:
    """Where a listener binds. `host` is bare (no brackets); str() gives the config syntax back."""

    host: str
    port: int

    @staticmethod
    def parse(text: str) -> ListenAddress:
        """"HOST:PORT" or "[IPv6]:PORT"; ValueError says what is wrong (without a key path)."""
        m = _LISTEN_RE.fullmatch(text)
        shown = repr(text[:80])
        if m is None:
            if text.count(":") > 1 and not text.startswith("["):
                raise ValueError(f"expected HOST:PORT, got {shown} (write an IPv6 address in brackets: [::1]:389)")
            raise ValueError(f"expected HOST:PORT, got {shown}")
        port = int(m["port"])
        if port > 65535:
            raise ValueError(f"port {port} is not between 0 and 65535 in {shown}")
        if m["ipv6"] is not None:
            try:
                ipaddress.IPv6Address(m["ipv6"])
            except ValueError:
                raise ValueError(f"{m['ipv6']!r} is not an IPv6 address in {shown}") from None
            return ListenAddress(m["ipv6"], port)
        host = m["host"]
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not an IPv4 address in {shown}") from None
        elif not all(_LABEL.fullmatch(label) for label in host.removesuffix(".").split(".")):
            raise ValueError(f"{host!r} is not a host name in {shown}")
        return ListenAddress(host, port)

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def is_loopback(self) -> bool:
        """Only this machine can connect: a loopback address or "localhost" (another name may resolve
        to anything, so it does not count)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.partition("%")[0]).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.is_ipv6 else f"{self.host}:{self.port}"


def loopback_port(text: str) -> int | None:
    """The port of "127.0.0.1:PORT" or "localhost:PORT", else None: the simulators bind nowhere else."""
    try:
        listen = ListenAddress.parse(text)
    except ValueError:
        return None
    return listen.port if listen.host in ("127.0.0.1", "localhost") else None
