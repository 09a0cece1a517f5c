"""Loopback port numbers for the few places where binding port 0 cannot work.

The rule: a server a test starts in its own process binds 127.0.0.1:0 and reports the port it got (the
simulators', FastAGI's and the LDAP server's `.port`); a config handed to the daemon in-process says
`127.0.0.1:0` for every listener nobody dials. A number is needed up front only when

- another process binds it from a config file and someone must dial it afterwards: the control address of
  a `pbxsync run` subprocess (the CLI finds the daemon through `control.listen` in the same file), the AMI
  port in a real Asterisk's manager.conf (kept across restarts), slapd's `-h` URL: `port_for_config()`;
- nothing may listen there, to show a refused connection: `refused_port()`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


def port_for_config() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, for a config file another process binds.

    Only for the cases in the module docstring: between this call and that process's bind, some other
    process could take the port (the window is short and the kernel hands out ephemeral ports in turn).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for as long as the block runs.

    The socket is bound but never listens, so the kernel answers a connect with a reset; holding it keeps
    any other process from taking the port meanwhile (a port merely found free could be taken).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])
