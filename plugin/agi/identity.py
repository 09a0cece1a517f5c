"""Who is calling: the authenticated device behind a channel, when there is one.

A caller ID arrives from outside and can be forged (anyone calling in over a trunk can present "101");
the endpoint in a phone's own channel name (`PJSIP/101-0000002a`) is the device Asterisk authenticated.
"""

from __future__ import annotations

import re

_DEVICE_CHANNEL = re.compile(r"^(?:PJSIP|SIP|IAX2|DAHDI)/(?P<endpoint>[^/;@-]{1,64})-[0-9A-Fa-f]+$")


def caller_identity(channel: str, callerid: str) -> str:
    """The device's endpoint for a device channel; else (Local/..., no channel) the caller ID."""
    device = _DEVICE_CHANNEL.match(channel.strip())
    return device["endpoint"] if device else callerid.strip()[:32]


def may_claim_extension(channel: str, callerid: str) -> bool:
    """False when a device channel presents a caller ID that is not its own endpoint (a trunk, a forgery)."""
    return caller_identity(channel, callerid) == callerid.strip()[:32]
