"""Every exception the package raises on purpose derives from ReconcileError.

A caller can then catch everything `reconcile` means to raise with one ``except``,
while Python's own errors (a bug) still show as themselves. The check reads every
module's source: a ``raise`` of a built-in exception class is allowed only where the
line says it never reaches a caller (caught in the same module).
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
from pathlib import Path

import reconcile

PACKAGE = Path(reconcile.__file__).parent
BUILTIN_EXCEPTIONS = {
    name for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}
#: (module, exception) pairs raised and caught inside the module, never seen by callers.
INTERNAL = {
    ("reconcile/_wire.py", "ValueError"),  # canonical_json -> caught by epoch_key
    ("reconcile/testing/reference.py", "ValueError"),  # json parse_constant -> caught
    ("reconcile/testing/simulate.py", "AssertionError"),  # an unreachable branch: a bug
}


def _raised_names(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                out.append((node.lineno, target.id))
    return out


def test_no_builtin_exception_is_raised_on_purpose():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for line, name in _raised_names(ast.parse(path.read_text(encoding="utf-8"))):
            if name in BUILTIN_EXCEPTIONS and (rel, name) not in INTERNAL:
                wrong.append(f"{rel}:{line}: raise {name}")
    assert not wrong, wrong


def test_every_exception_class_of_the_package_is_a_reconcile_error():
    classes = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if rel.name == "__main__":
            continue
        name = ".".join(rel.parts).removesuffix(".__init__")
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional extra (dask, rich...) that is not installed
            continue
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("reconcile"):
                classes.append(value)
    assert classes
    assert [c.__qualname__ for c in classes if not issubclass(c, reconcile.ReconcileError)] == []
