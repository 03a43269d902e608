"""``reconcile record``: write every event a live server sends to a trace file.

Every socket event (any name) and every history page the client applied, in order,
one JSON line each, flushed as it goes; ``reconcile replay FILE`` then shows exactly
the bubbles the client had. Ctrl-C, SIGTERM or ``--duration`` stop it cleanly.
"""

from __future__ import annotations

import argparse
from typing import IO

HELP = "record a live server's events to a trace file"
DESCRIPTION = (
    "Connect to a live chat server and write every event the client applies (socket "
    "events and history pages, in order) to a trace file, one JSON line each. "
    "`reconcile replay FILE` then shows exactly what the client showed. Stop with Ctrl-C."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    live_arguments(parser)
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE",
        help="trace file to write (- for stdout)",
    )


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from ._live import run_record

    return run_record(args, out)


def live_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8765")
    parser.add_argument(
        "--thread", required=True, action="append", metavar="ID",
        help="thread to follow (repeat for several)",
    )
    parser.add_argument("--user", default="reconcile", help="user id for the handshake and history")
    parser.add_argument(
        "--history-limit", type=int, default=50, metavar="N", help="messages per history page"
    )
    parser.add_argument(
        "--transport", choices=("polling", "websocket"),
        help="force one socket.io transport (default: polling upgraded to websocket)",
    )
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this many seconds"
    )
