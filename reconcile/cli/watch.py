"""``reconcile watch``: a live thread's bubbles, updating in the terminal.

The view is :mod:`reconcile.client.view`; this module parses arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable
from typing import IO, TYPE_CHECKING

from ._common import EXIT_OK
from .record import client_from_args, exit_summary, live_arguments, require_client, run_until_signal

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

    from rich.console import Console

HELP = "show a live thread's bubbles in the terminal"
DESCRIPTION = (
    "Connect to a live chat server and show the threads' bubbles (agent, status, text), "
    "the running turns and refused callbacks, updating live. Stop with Ctrl-C."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    live_arguments(parser)
    parser.add_argument(
        "--refresh", type=float, default=8.0, help="screen refreshes per second (default 8)"
    )


def run(args: argparse.Namespace, out: IO[str]) -> int:
    require_client("watch")
    from rich.console import Console

    from reconcile.client.view import watch

    client = client_from_args(args)
    console = Console(file=out)

    def main(stop: asyncio.Event) -> Awaitable[None]:
        return watch(client, console, stop, duration=args.duration, refresh=args.refresh)

    run_until_signal(main)
    print_summary(console, exit_summary(client))
    return EXIT_OK


def print_summary(console: Console, lines: list[str]) -> None:
    """Print summary lines as they are: they hold server text ("[opus] ...", "[/b]"),
    which ``console.print(str)`` would read as rich markup (and emoji codes)."""
    from rich.text import Text

    for line in lines:
        console.print(Text(line, style="dim"))
