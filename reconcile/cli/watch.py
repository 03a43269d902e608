"""``reconcile watch``: a live thread's bubbles, updating in the terminal."""

from __future__ import annotations

import argparse
from typing import IO

from .record import live_arguments

HELP = "show a live thread's bubbles in the terminal"
DESCRIPTION = (
    "Connect to a live chat server and show the threads' bubbles (agent, status, text) "
    "updating live. Stop with Ctrl-C."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    live_arguments(parser)
    parser.add_argument(
        "--refresh", type=float, default=8.0, help="screen refreshes per second (default 8)"
    )


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from ._live import run_watch

    return run_watch(args, out)
