"""The ``reconcile`` command line: one module per command, the only place with files
and printing.

* ``replay TRACE`` (:mod:`.replay`), ``check TRACE`` (:mod:`.check`),
  ``audit PATH...`` (:mod:`.audit`), ``simulate`` (:mod:`.simulate`), ``record`` and
  ``watch`` (:mod:`.record`, :mod:`.watch`; the live client, an optional extra).

Every command module defines ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args, out) -> int``, and imports at module level only what building the parser
needs: heavy imports (the client, the simulator, the terminal UI) happen in ``run``.

Exit status: 0 success; 1 ``check`` found refusals (or, with ``--strict``, a broken
rule of PROTOCOL section 10, or the trace held no event); 2 usage, input or output
errors (a missing file, closed standard input or output, a full disk). A reader that
leaves early (``| head``) is not an error: the command keeps its own status.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
        if out is None:  # started with `>&-`: there is no file descriptor 1
            _complain("standard output is closed; nothing could be printed")
            return EXIT_USAGE
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
        status = args.run(args, out)
        out.flush()  # a full disk must fail here, where it can be reported
        return status
    except UsageError as exc:
        _complain(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _complain("interrupted")
        return 130
    except BrokenPipeError:
        # `reconcile check big.jsonl | head`: the reader left; that is not an error, and
        # a command that already knows its verdict (check) still exits with it.
        _drop_output(out)
        return getattr(args, "status_if_reader_leaves", EXIT_OK)
    except OSError as exc:  # a full disk (`> /dev/full`), a closed or broken descriptor
        _drop_output(out)
        _complain(f"error: cannot write the output: {exc.strerror or exc}")
        return EXIT_USAGE


def _complain(message: str) -> None:
    if sys.stderr is not None:  # `2>&-` leaves nothing to say it on
        print(f"reconcile: {message}", file=sys.stderr)


def _drop_output(out: IO[str]) -> None:
    """Point the output's descriptor at /dev/null, so the interpreter's last flush of
    what is still buffered does not fail again (and print a traceback) at exit."""
    try:
        fd = out.fileno()
    except (OSError, ValueError, AttributeError):
        return  # not a file (a StringIO in tests)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)
