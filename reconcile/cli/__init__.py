"""The ``reconcile`` command line: one module per command, the only place with files
and printing.

* ``replay TRACE`` (:mod:`.replay`), ``check TRACE`` (:mod:`.check`),
  ``audit PATH...`` (:mod:`.audit`), ``simulate`` (:mod:`.simulate`), ``record`` and
  ``watch`` (:mod:`.record`, :mod:`.watch`; the live client, an optional extra).

Every command module defines ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args, out) -> int``, and imports at module level only what building the parser
needs: heavy imports (the client, the simulator, the terminal UI) happen in ``run``.
A command line that starts with a command's name imports that command's module only
and builds only its parser: ``reconcile check`` pays for nothing ``check`` does not use
(building all six parsers cost more than checking a short trace). ``reconcile
--help``, a mistyped command or no command at all build the whole parser.

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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser: every command, or only ``command`` when given.

    A parser for one command parses that command's lines exactly as the whole one
    does (same usage, help and errors: argparse hands everything after the command's
    name to its own parser); the other commands' modules are not imported.
    """
    parser = argparse.ArgumentParser(
        prog="reconcile",
        formatter_class=_formatter,
        description="Turn a multi-agent chat server's event trace into chat bubbles "
        "(exact turn identity, no guessing).",
    )
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if command is None else (command,):
        module = importlib.import_module(f"{__name__}.{name}")
        sub = commands.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                                  formatter_class=_formatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's help formatter, as wide as argparse makes it, without shutil.

    argparse measures the terminal with ``shutil.get_terminal_size`` each time it makes
    a formatter (once per option added); importing shutil brings the zlib, bz2 and lzma
    modules, about 3% of ``reconcile check``'s start-up, for a width that only help and
    usage text use. :func:`_columns` measures it the same way.
    """
    return argparse.HelpFormatter(prog, width=_columns() - 2)


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size().columns`` gives it: the
    ``COLUMNS`` variable, else the width of the terminal on standard output, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stdout = sys.__stdout__  # None when started with `>&-`
        try:
            columns = os.get_terminal_size(stdout.fileno()).columns if stdout else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


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
    if argv is None:
        argv = sys.argv[1:]
    # Only the first word can name the command: before it, argparse accepts only
    # --help and --version, which need the whole parser (its list of commands).
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
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
