"""The docs and the distribution stay true: API reference, versions, links, install hints.

The API reference is built here from the docstrings (pdoc), so a public name without a
docstring, or one that pdoc cannot render, fails the suite rather than a release.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pdoc
import pdoc.doc
import pytest

import reconcile

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DISTRIBUTION = PYPROJECT["project"]["name"]


def tracked_files() -> list[Path]:
    """Files under version control, or every file when this is not a git checkout."""
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        skipped = {".git", ".venv", "build", "__pycache__", ".hypothesis"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skipped & set(p.parts)]
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def text_files(*suffixes: str) -> list[Path]:
    return [p for p in tracked_files() if p.suffix in suffixes]


# --- the API reference -------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_page(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("api")
    pdoc.pdoc("reconcile", output_directory=out)
    return (out / "reconcile.html").read_text(encoding="utf-8")


def test_api_reference_renders_every_public_name(api_page):
    missing = [name for name in reconcile.__all__ if f'id="{name}"' not in api_page]
    assert not missing


def test_every_public_name_has_a_docstring():
    module = pdoc.doc.Module(reconcile)
    undocumented = [name for name in reconcile.__all__ if not module.members[name].docstring.strip()]
    assert not undocumented


def test_api_reference_shows_docstrings_not_only_names(api_page):
    # The first words of Reconciler's docstring make it into the page.
    first_line = reconcile.Reconciler.__doc__.strip().splitlines()[0]
    assert first_line.split()[0] in api_page
    assert "receive_line" in api_page


def test_readme_says_how_to_build_the_api_reference():
    assert "python -m pdoc reconcile -o build/api" in (ROOT / "README.md").read_text(
        encoding="utf-8")


# --- one version, one name -----------------------------------------------------------------


def test_version_is_the_same_in_the_package_the_metadata_and_the_changelog():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, flags=re.M)
    assert released, "CHANGELOG.md lists no released version"
    assert PYPROJECT["project"]["version"] == reconcile.__version__ == released[0]


def test_changelog_keeps_an_unreleased_section_on_top():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.*)$", changelog, flags=re.M)
    assert headings[0].startswith("[Unreleased]")


def test_distribution_name_differs_from_the_import_name_and_keeps_the_command():
    # `reconcile` on PyPI is another project (2021); the import name and command stay.
    assert DISTRIBUTION == "reconcile-chat"
    assert PYPROJECT["project"]["scripts"] == {"reconcile": "reconcile.cli:main"}
    assert "reconcile" in PYPROJECT["tool"]["setuptools"]["packages"]


def test_metadata_has_license_urls_classifiers_and_python_versions():
    project = PYPROJECT["project"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert "Copyright (c)" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert {"Homepage", "Changelog", "Issues"} <= set(project["urls"])
    assert project["requires-python"] == ">=3.11"
    pythons = [c.rsplit(" ", 1)[1] for c in project["classifiers"]
               if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert pythons and pythons[0] == "3.11"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Python {pythons[0]} to {pythons[-1]}" in readme


def test_the_test_extra_pulls_the_client_under_the_distribution_name():
    test_extra = PYPROJECT["project"]["optional-dependencies"]["test"]
    assert f"{DISTRIBUTION}[client]" in test_extra
    assert any(r.startswith("pdoc") for r in test_extra)
    assert any(r.startswith("import-linter") for r in test_extra)


# `reconcile[client]` or `pip install reconcile`: the other project's distribution on PyPI.
OLD_HINT = re.compile(r"(?<![\w.-])reconcile\[\w+\]|pip install '?reconcile(?![\w-])")


def test_install_hints_name_the_distribution():
    wrong = {}
    for path in text_files(".py", ".md", ".toml", ".txt", ".cfg", ""):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "tests/test_docs.py":
            continue
        hits = OLD_HINT.findall(path.read_text(encoding="utf-8", errors="replace"))
        if hits:
            wrong[rel] = hits
    assert not wrong, wrong


# --- the docs stand alone -------------------------------------------------------------------

DOCS = ["README.md", "CHANGELOG.md", "docs/protocol.md", "examples/README.md",
        "benchmarks/README.md", "docs/client.md", "docs/audit.md", "docs/testing.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS)
def test_docs_cite_nothing_outside_the_repository(doc):
    path = ROOT / doc
    if not path.exists():
        pytest.skip(f"{doc} is not in this checkout")
    text = path.read_text(encoding="utf-8")
    for outside in ("../shared", "shared/background", "PROTOCOL.md", "Where this comes from",
                    "Normative source"):
        assert outside not in text, f"{doc} cites {outside!r}"


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_in_docs_point_at_files_in_the_repository(doc):
    path = ROOT / doc
    if not path.exists():
        pytest.skip(f"{doc} is not in this checkout")
    broken = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the same page
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve()
        if not resolved.exists() or ROOT not in resolved.parents and resolved != ROOT:
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(target)
    assert not broken


def anchors(markdown: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.*)$", markdown.read_text(encoding="utf-8"), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_same_page_anchors_exist():
    for doc in ("README.md", "docs/protocol.md"):
        path = ROOT / doc
        wanted = [t[1:] for t in LINK.findall(path.read_text(encoding="utf-8"))
                  if t.startswith("#")]
        assert set(wanted) <= anchors(path), doc


def test_readme_links_only_to_the_repository_or_the_protocol_history():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in LINK.findall(readme):
        assert not re.match(r"[a-z]+:", target) or "keepachangelog" in target \
            or "semver.org" in target, target


# --- benchmarks write only under build/ -----------------------------------------------------


def test_benchmark_results_go_under_an_ignored_build_folder(tmp_path, monkeypatch):
    from benchmarks import _harness, run

    assert _harness.RESULTS.relative_to(ROOT).parts[0] == "build"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(_harness.RESULTS / "x.json")],
                             cwd=ROOT)
    assert ignored.returncode == 0, "build/ must be gitignored"
    # A run with no benchmark chosen still writes its results file, where it is told to.
    monkeypatch.setattr(run, "ALL", ("memory",))
    monkeypatch.setattr(run.bench_memory, "run", lambda n, repeat: [])
    output = tmp_path / "latest.json"
    assert run.main(["--only", "memory", "--quick", "--output", str(output)]) == 0
    assert output.exists()


def test_only_update_docs_redraws_the_readme_picture(monkeypatch, tmp_path):
    from benchmarks import plot, run

    drawn = []
    monkeypatch.setattr(run.bench_memory, "run", lambda n, repeat: [])
    monkeypatch.setattr(plot, "draw", lambda results, path=plot.PNG: drawn.append(path) or path)
    output = tmp_path / "latest.json"
    run.main(["--only", "memory", "--quick", "--plot", "--output", str(output)])
    assert drawn and plot.PNG not in drawn
    assert all(ROOT / "build" in p.parents for p in drawn)
    drawn.clear()
    run.main(["--only", "memory", "--quick", "--update-docs", "--output", str(output)])
    assert plot.PNG in drawn
