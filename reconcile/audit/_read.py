"""Finding traces and reading them line by line, plain or gzip-compressed.

A fleet's captures are many files, some of them compressed, some of them broken. This
module turns the command line's paths (files, directories, globs) into a sorted list of
files, and reads one file as a stream of lines without ever holding the whole file:
memory stays flat whatever the file's size (one line at a time, plus gzip's window).

Compression is recognised by the file's first two bytes (gzip's magic number), not
by its name, so a ``.jsonl`` that is really gzip, or a ``.gz`` that is really plain
text, reads correctly.
"""

from __future__ import annotations

import glob
import gzip
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from reconcile import ReconcileError

__all__ = ["TRACE_SUFFIXES", "Unreadable", "expand", "open_lines", "READ_ERRORS"]

#: Inside a directory, the files taken as traces (a file named on the command line
#: is always taken, whatever its name).
TRACE_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json.gz")

_GZIP_MAGIC = b"\x1f\x8b"

#: What reading a broken file raises: the OS (missing, unreadable), gzip (not gzip
#: after all, a bad header or CRC), zlib (corrupt data) and EOFError (a gzip file cut
#: short: "Compressed file ended before the end-of-stream marker was reached").
READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile)


class Unreadable(ReconcileError):
    """A path that names no readable trace; ``str()`` says why, for people."""


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def expand(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The trace files the command line names, and the names that gave none.

    Args:
        paths: files, directories (searched recursively for :data:`TRACE_SUFFIXES`)
            and globs (``**`` crosses directories). A path that exists is taken as a
            path even if it contains glob characters.

    Returns:
        ``(files, problems)``: the files, normalised, without duplicates and sorted;
        and ``(path, reason)`` for each argument that named nothing (a missing file,
        a glob that matched nothing). Files are not opened here: a file that exists
        but cannot be read is found when it is read, and reported then.
    """
    files: set[str] = set()
    problems: list[tuple[str, str]] = []
    for path in paths:
        if os.path.isdir(path):
            found = _walk(path)
            if not found:
                problems.append((path, "directory holds no trace files"))
            files.update(found)
        elif os.path.lexists(path):
            files.add(os.path.normpath(path))
        elif _is_glob(path):
            matches = [m for m in glob.glob(path, recursive=True) if not os.path.isdir(m)]
            if not matches:
                problems.append((path, "no file matches"))
            files.update(os.path.normpath(m) for m in matches)
        else:
            problems.append((path, "no such file"))
    return sorted(files), problems


def _walk(directory: str) -> list[str]:
    found = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()  # only for a stable walk; the result is sorted anyway
        found.extend(
            os.path.normpath(os.path.join(root, name))
            for name in names
            if name.endswith(TRACE_SUFFIXES)
        )
    return found


@contextmanager
def open_lines(path: str) -> Iterator[Iterator[bytes]]:
    """Open a trace and give its lines (bytes, split on ``\\n`` only, without it).

    Raises:
        Unreadable: the path is not a regular file (a directory, a FIFO that would
            block forever, a device) or cannot be opened.

    Iterating may raise one of :data:`READ_ERRORS` when the file is corrupt or cut
    short; the caller reports it.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise Unreadable("no such file") from None
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise Unreadable("is a directory")
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO with no writer blocks forever; a device may never end.
        raise Unreadable("not a regular file")
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    try:
        stream: IO[bytes] = raw
        if raw.peek(2)[:2] == _GZIP_MAGIC:
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        yield _lines(stream)
    finally:
        raw.close()


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    # Binary iteration splits on b"\n" only, as PROTOCOL section 1 numbers lines
    # (a "\r" or a Unicode line separator inside a line does not start a new one).
    for line in stream:
        yield line[:-1] if line.endswith(b"\n") else line
