"""The ``reconcile`` command line: one module per command, the only place with files
and printing.

* ``replay TRACE`` (:mod:`.replay`), ``check TRACE`` (:mod:`.check`),
  ``audit PATH...`` (:mod:`.audit`), ``simulate`` (:mod:`.simulate`), ``record`` and
  ``watch`` (:mod:`.record`, :mod:`.watch`; the live client, an optional extra).

Every command module defines ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args, out) -> int``, and imports at module level only what building the parser
needs: heavy imports (the client, the simulator, the terminal UI) happen in ``run``.

Exit status: 0 success, 1 ``check`` found refusals, 2 usage or input errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import IO

from reconcile import __version__

from ._common import EXIT_OK, EXIT_USAGE, UsageError, can_write_any_text

__all__ = ["COMMANDS", "build_parser", "main"]

#: Command name -> the module of this package that carries it out, in help order.
COMMANDS = ("replay", "check", "audit", "simulate", "record", "watch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconcile",
        description="Turn a multi-agent chat server's event trace into chat bubbles "
        "(exact turn identity, no guessing).",
    )
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        sub = commands.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    """Run the command line; returns the exit status (never raises for bad input)."""
    if out is None:
        out = sys.stdout
        if not can_write_any_text(out) and hasattr(out, "reconfigure"):
            # A terminal or pipe that is not UTF-8 (PYTHONIOENCODING=ascii, LANG=C on
            # old systems): show what it cannot encode as "?" rather than crash.
            out.reconfigure(errors="replace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse prints its own usage message
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        return args.run(args, out)
    except UsageError as exc:
        print(f"reconcile: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("reconcile: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `reconcile replay big.jsonl | head`: the reader left; that is not an error.
        sys.stderr.close()
        return EXIT_OK
