"""The import contracts in pyproject.toml hold, name every module, and catch a break.

The contracts (import-linter, `[tool.importlinter]`) state the design's dependencies: the
engine core (`reconcile._*`) never imports a front end nor anything with a clock, I/O or
an event loop; the turn state machine never imports the engine; the wire layer imports
only the refusal reasons; front ends reach the core only through `reconcile`'s public
names. These tests run the same check as `lint-imports`, keep the contracts' module lists
in step with the files on disk, and prove on a copy of the package that an injected
import breaks the contract meant to catch it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reconcile"
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONTRACTS = {c["id"]: c for c in CONFIG["tool"]["importlinter"]["contracts"]}

# What the turn state machine may import from the core: the layers below the engine.
TURNS_MAY_IMPORT = {"reconcile._bubbles", "reconcile._errors", "reconcile._events",
                    "reconcile._values", "reconcile._wire"}
# What the wire layer may import from the core: the refusal reasons, nothing with state.
WIRE_MAY_IMPORT = {"reconcile._errors"}


def top_level(private: bool) -> set[str]:
    """Modules and packages directly under reconcile/, private (`_x`) or public."""
    names = set()
    for path in PACKAGE.iterdir():
        if path.is_dir() and (path / "__init__.py").exists():
            name = path.name
        elif path.suffix == ".py":
            name = path.stem
        else:
            continue
        if name.startswith("__"):  # __init__, __main__, __pycache__
            continue
        if name.startswith("_") == private:
            names.add(f"reconcile.{name}")
    return names


CORE = top_level(private=True)
FRONT_ENDS = top_level(private=False)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the package found under `root`, with root's pyproject.toml."""
    env = dict(os.environ, PYTHONPATH=str(root))
    code = "import sys; from importlinter.cli import lint_imports; " \
           "sys.exit(lint_imports(no_cache=True, no_logo=True))"
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_package_keeps_every_import_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CONTRACTS)} kept, 0 broken" in result.stdout


def test_the_core_and_front_ends_are_what_the_design_says():
    # If this fails, a module was added or renamed: update the contracts in pyproject.toml
    # (and the lists here) rather than this expectation.
    assert {"reconcile._reconciler", "reconcile._turns", "reconcile._wire"} <= CORE
    assert {"reconcile.cli", "reconcile.client", "reconcile.testing"} <= FRONT_ENDS


def test_core_contracts_name_every_core_module():
    assert set(CONTRACTS["core-no-front-ends"]["source_modules"]) == CORE
    assert set(CONTRACTS["core-pure"]["source_modules"]) == CORE
    assert set(CONTRACTS["front-ends-public-names"]["forbidden_modules"]) == CORE


def test_front_end_contracts_name_every_front_end():
    assert set(CONTRACTS["core-no-front-ends"]["forbidden_modules"]) == FRONT_ENDS
    assert set(CONTRACTS["front-ends-public-names"]["source_modules"]) == FRONT_ENDS
    assert CONTRACTS["front-ends-public-names"]["allow_indirect_imports"] is True


def test_turns_and_wire_contracts_forbid_every_other_core_module():
    turns = CONTRACTS["turns-no-engine"]
    assert turns["source_modules"] == ["reconcile._turns"]
    assert set(turns["forbidden_modules"]) == CORE - TURNS_MAY_IMPORT - {"reconcile._turns"}
    assert "reconcile._reconciler" in turns["forbidden_modules"]
    wire = CONTRACTS["wire-stateless"]
    assert wire["source_modules"] == ["reconcile._wire"]
    assert set(wire["forbidden_modules"]) == CORE - WIRE_MAY_IMPORT - {"reconcile._wire"}


def test_the_core_contract_forbids_clock_randomness_io_and_async():
    forbidden = set(CONTRACTS["core-pure"]["forbidden_modules"])
    assert {"asyncio", "socket", "logging", "time", "random", "io", "os"} <= forbidden
    assert CONFIG["tool"]["importlinter"]["include_external_packages"] is True


# Each injection is one import a careless change could add; the contract in the second
# column must report it as broken.
INJECTIONS = [
    ("_reconciler.py", "import reconcile.client", "core-no-front-ends"),
    ("_bubbles.py", "from reconcile.cli import main", "core-no-front-ends"),
    ("_reconciler.py", "import time", "core-pure"),
    ("_events.py", "import asyncio", "core-pure"),
    ("_turns.py", "from reconcile import _reconciler", "turns-no-engine"),
    ("_wire.py", "from ._bubbles import Bubble", "wire-stateless"),
    ("cli/replay.py", "from reconcile._reconciler import Reconciler", "front-ends-public-names"),
    ("client/__init__.py", "from reconcile._wire import decode", "front-ends-public-names"),
]


@pytest.mark.parametrize(("module", "line", "contract"), INJECTIONS,
                         ids=[f"{m}:{c}" for m, _, c in INJECTIONS])
def test_an_injected_import_breaks_its_contract(tmp_path, module, line, contract):
    shutil.copytree(PACKAGE, tmp_path / "reconcile",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "reconcile" / module
    # Appended at the end: import-linter reads the source, it never runs it.
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")

    result = lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    broken = [text for text in result.stdout.splitlines() if text.endswith("BROKEN")]
    assert broken, result.stdout
    name = " ".join(CONTRACTS[contract]["name"].split())
    # import-linter wraps long names across lines; compare with whitespace collapsed.
    report = " ".join(result.stdout.split())
    assert f"{name} BROKEN" in report, result.stdout
