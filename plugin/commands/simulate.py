"""`pbxsync simulate exchange --data FILE --listen 127.0.0.1:PORT`: run a simulated peer by hand."""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from typing import Any

from pbxsync.sync.errors import UserError
from pbxsync.sync.listen import loopback_port


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("simulate", help="run a simulated Exchange (or PBX) for demos and tests")
    peers = parser.add_subparsers(dest="peer", metavar="PEER")
    peers.required = True
    exchange = peers.add_parser("exchange", help="EWS SOAP + autodiscover on loopback, from a JSON data file")
    exchange.add_argument("--data", required=True, metavar="FILE", help="mailbox data file (docs/exchange-ews.md)")
    exchange.add_argument("--listen", default="127.0.0.1:8443", metavar="127.0.0.1:PORT",
                          help="loopback address to listen on (port 0 = any free port)")
    exchange.set_defaults(handler=run_exchange)
    graph = peers.add_parser("graph", help="Microsoft Graph + the Entra ID token endpoint (HTTPS) on loopback, "
                             "from the same JSON data file; prints the [exchange] section to use")
    graph.add_argument("--data", required=True, metavar="FILE", help="mailbox data file (docs/exchange-ews.md)")
    graph.add_argument("--listen", default="127.0.0.1:0", metavar="127.0.0.1:PORT",
                       help="loopback address to listen on (port 0 = any free port)")
    graph.add_argument("--tls-dir", default="", metavar="DIR",
                       help="where the simulator's CA certificate is written (default: a temporary folder)")
    graph.set_defaults(handler=run_graph)
    outbox = peers.add_parser("outbox", help="the mail a running EWS or Graph simulator was asked to send "
                              "(rejection notices), from its control interface")
    outbox.add_argument("--url", required=True, metavar="URL",
                        help="the simulator's base URL, e.g. http://127.0.0.1:8443 (EWS) or https://127.0.0.1:PORT "
                        "(Graph); loopback only")
    outbox.add_argument("--ca-file", default="", metavar="FILE", help="the Graph simulator's CA certificate")
    outbox.add_argument("--json", action="store_true", help="print the messages as JSON")
    outbox.set_defaults(handler=run_outbox)
    # --- asterisk (AMI) simulator: owned by the AMI/AUTOCALL helper ---
    asterisk = peers.add_parser("asterisk", help="a simulated Asterisk AMI on loopback (scripted phones)")
    asterisk.add_argument("--listen", default="127.0.0.1:5038", metavar="127.0.0.1:PORT",
                          help="loopback address to listen on (port 0 = any free port)")
    asterisk.add_argument("--phones", metavar="FILE",
                          help='JSON {"101": "answer", "199": "busy", "198": "no_answer"} (default: 1XX answer)')
    asterisk.add_argument("--username", default="pbxsync", help="AMI user the simulator accepts")
    asterisk.add_argument("--secret", default="pbxsync", help="its secret (a test value; never a real one)")
    asterisk.set_defaults(handler=run_asterisk)
    # --- end asterisk ---


def _listen_port(listen: str) -> int:
    port = loopback_port(listen)
    if port is None:
        raise UserError(f"--listen: expected 127.0.0.1:PORT (loopback only), got {listen!r}")
    return port


def run_exchange(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    from pbxsync.sync.simulator.ews_server import EwsSimulator
    from pbxsync.sync.simulator.mailboxes import Organisation

    port = _listen_port(args.listen)
    org = Organisation.load_file(args.data)
    sim = EwsSimulator(org, port=port).start()
    print(f"EWS simulator: {sim.ews_url}", flush=True)
    print(f"autodiscover:  {sim.autodiscover_url}", flush=True)
    print(f"mailboxes:     {', '.join(u.email for u in org.users())}", flush=True)
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def run_graph(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    from pbxsync.sync.simulator.graph_server import main as graph_main

    _listen_port(args.listen)
    argv = ["--data", args.data, "--listen", args.listen]
    if args.tls_dir:
        argv += ["--tls-dir", args.tls_dir]
    return graph_main(argv, stop)


def run_outbox(args: argparse.Namespace) -> int:
    from pbxsync.sync.simulator.outbox_client import fetch_outbox, render_outbox

    messages = fetch_outbox(args.url, args.ca_file)
    print(json.dumps(messages, indent=2, ensure_ascii=False) if args.json else render_outbox(messages))
    return 0


# --- asterisk (AMI) simulator: owned by the AMI/AUTOCALL helper ---
async def run_asterisk(args: argparse.Namespace, stop: asyncio.Event | None = None) -> int:
    from pbxsync.plugin.ami.simulator import AsteriskSimulator, Phone, SimUser, load_phones

    listen_port = _listen_port(args.listen)
    try:
        phones = load_phones(args.phones) if args.phones else [Phone(str(n)) for n in range(100, 200)]
    except (OSError, ValueError) as exc:
        raise UserError(f"--phones: {exc}") from None
    sim = AsteriskSimulator(users=[SimUser(args.username, args.secret)], phones=phones)
    port = await sim.start("127.0.0.1", listen_port)
    print(f"AMI simulator: 127.0.0.1:{port} (user {args.username})", flush=True)
    print(f"phones:        {', '.join(sorted(p.extension + '=' + p.behaviour.value for p in phones)[:10])}"
          f"{' ...' if len(phones) > 10 else ''}", flush=True)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await sim.stop()
    return 0
# --- end asterisk ---
