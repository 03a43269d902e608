"""reconcile audit: the merged report, its determinism across runners, broken files,
the section-10 rules per file, the command line and the chart."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
from pathlib import Path

import pytest

from reconcile import Reconciler
from reconcile.audit import audit, check_document, exit_status, expand, file_record, merge
from reconcile.audit._runner import check_file, run_local
from reconcile.audit.chart import chart_html, write_chart
from reconcile.cli import main
from reconcile.testing.simulate import generate

from .helpers import announce, callback, chunk, done

FILES = 240


def _write(path: Path, lines: list[str], compress: bool) -> None:
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Several hundred small simulated sessions in nested directories: a third with
    protocol faults, a quarter gzip-compressed, half on an older server (no
    turnInvocationId, so section-10 rule 3 shows)."""
    root = tmp_path_factory.mktemp("fleet")
    for i in range(FILES):
        folder = root / f"host-{i % 4}" / f"day-{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = generate(
            i, turns=4 + i % 5, threads=1 + i % 3, faults=0.08 if i % 3 == 0 else 0.0,
            dual_ids=1.0 if i % 2 else 0.0,
        )
        compress = i % 4 == 1
        _write(folder / f"s{i:04d}.jsonl{'.gz' if compress else ''}", lines, compress)
    (root / "README.txt").write_text("not a trace: skipped inside a directory")
    return root


def _read_whole(path: str) -> list[bytes]:
    """A trace's lines read the simple way (whole file), to check the streaming reader."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


# ------------------------------------------------------------------ the merged report


def test_report_equals_the_merge_of_single_file_checks(corpus):
    files, problems = expand([str(corpus)])
    assert len(files) == FILES and not problems
    expected = merge(file_record(p, check_document(_read_whole(p))) for p in files)
    assert audit([str(corpus)], workers=1)["report"] == expected


def test_report_totals_match_the_engine_file_by_file(corpus):
    files, _ = expand([str(corpus)])
    lines = events = 0
    reasons: dict[str, int] = {}
    for path in files:
        engine = Reconciler()
        engine.feed(_read_whole(path))
        lines += engine.lines
        events += engine.stats.events
        for rejected in engine.rejected:
            reasons[rejected.reason.value] = reasons.get(rejected.reason.value, 0) + 1
    report = audit([str(corpus)], workers=1)["report"]
    assert (report["lines"], report["events"], report["reasons"]) == (lines, events, reasons)
    assert report["refused"] == sum(reasons.values()) > 0
    assert report["files"] == {
        "count": FILES, "read": FILES, "unreadable": 0,
        "with_refusals": sum(1 for f in report["per_file"] if f["refused"]),
        "with_gaps": sum(1 for f in report["per_file"] if f["gaps"]),
    }
    assert [f["path"] for f in report["per_file"]] == files


def test_the_same_report_whatever_the_workers_and_the_order_they_finish(corpus):
    one = audit([str(corpus)], workers=1)
    two = audit([str(corpus)], workers=2)
    assert two["report"] == one["report"]
    assert (one["timing"]["workers"], two["timing"]["workers"]) == (1, 2)
    records = [check_file(p)[0] for p in expand([str(corpus)])[0]]
    random.Random(3).shuffle(records)
    assert merge(records) == one["report"]


def test_the_same_report_on_a_dask_cluster(corpus):
    distributed = pytest.importorskip("dask.distributed", reason="dask.distributed not installed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        on_dask = audit([str(corpus)], scheduler=client)
    assert on_dask["report"] == audit([str(corpus)], workers=1)["report"]
    assert on_dask["timing"]["runner"] == "dask" and on_dask["timing"]["workers"] == 2


def test_the_worst_files_are_ranked_by_refusals_then_path(corpus):
    report = audit([str(corpus)], workers=1, top=5)["report"]
    worst = report["worst"]
    assert len(worst) == 5
    keys = [(-w["refused"], -w["advisories"], w["path"]) for w in worst]
    assert keys == sorted(keys)
    most = max(f["refused"] for f in report["per_file"])
    assert worst[0]["refused"] == most


def test_threads_are_counted_across_files(corpus):
    files_of: dict[str, int] = {}
    bubbles_of: dict[str, int] = {}
    for path in expand([str(corpus)])[0]:
        engine = Reconciler()
        engine.feed(_read_whole(path))
        named = set(engine.threads) | {r.thread for r in engine.rejected if r.thread is not None}
        for thread in named:
            files_of[thread] = files_of.get(thread, 0) + 1
        for thread in engine.threads:
            bubbles_of[thread] = bubbles_of.get(thread, 0) + len(engine.bubbles(thread))
    report = audit([str(corpus)], workers=1)["report"]
    assert {t: c["files"] for t, c in report["threads"].items()} == files_of
    assert {t: c["bubbles"] for t, c in report["threads"].items() if c["bubbles"]} == {
        t: n for t, n in bubbles_of.items() if n
    }
    assert list(report["threads"]) == sorted(files_of)
    assert sum(t["refused"] for t in report["threads"].values()) <= report["refused"]
    assert sum(t["gaps"] for t in report["threads"].values()) == report["gaps"]["count"]


# ------------------------------------------------------------------ broken files


def test_missing_unreadable_and_truncated_files_are_reported_not_fatal(corpus, tmp_path):
    good = expand([str(corpus)])[0]
    middle = good[len(good) // 2]
    whole = gzip.compress(Path(good[0]).read_bytes() if not good[0].endswith(".gz")
                          else gzip.decompress(Path(good[0]).read_bytes()), mtime=0)
    truncated = tmp_path / "m-truncated.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) * 2 // 3])
    corrupt = tmp_path / "m-corrupt.jsonl.gz"
    corrupt.write_bytes(whole[:10] + b"\xff" * 64 + whole[74:])
    fifo = tmp_path / "m-fifo.jsonl"
    os.mkfifo(fifo)  # reading it would block forever: it must not be opened
    missing = tmp_path / "m-missing.jsonl"
    paths = [*good[: len(good) // 2], str(truncated), str(fifo), str(missing), str(corrupt),
             *good[len(good) // 2 :]]
    for workers in (1, 2):
        report = audit(paths, workers=workers)["report"]
        errors = {Path(u["path"]).name: u for u in report["unreadable"]}
        assert set(errors) == {"m-truncated.jsonl.gz", "m-fifo.jsonl", "m-missing.jsonl",
                               "m-corrupt.jsonl.gz"}
        assert errors["m-truncated.jsonl.gz"]["error"].startswith("truncated gzip")
        assert errors["m-truncated.jsonl.gz"]["lines_read"] > 0  # streamed until the cut
        assert errors["m-corrupt.jsonl.gz"]["error"].startswith("corrupt gzip")
        assert errors["m-fifo.jsonl"]["error"] == "not a regular file"
        assert errors["m-missing.jsonl"]["error"] == "no such file"
        assert report["files"]["read"] == len(good) and report["files"]["count"] == len(good) + 4
        # the good files' totals are untouched by the broken ones
        assert {k: report[k] for k in ("lines", "reasons", "rules")} == {
            k: audit(good, workers=1)["report"][k] for k in ("lines", "reasons", "rules")
        }
        assert middle in [f["path"] for f in report["per_file"]]
        assert exit_status(report) == 1


def test_compression_is_recognised_by_content_not_name(tmp_path):
    lines = generate(5, turns=6)
    _write(tmp_path / "gzip-named-plain.jsonl", lines, compress=True)
    _write(tmp_path / "plain-named-gzip.jsonl.gz", lines, compress=False)
    report = audit([str(tmp_path)], workers=1)["report"]
    assert not report["unreadable"]
    assert [f["lines"] for f in report["per_file"]] == [len(lines), len(lines)]


def test_paths_directories_and_globs_expand_to_sorted_unique_files(corpus):
    files, problems = expand([
        str(corpus / "host-1"), str(corpus / "host-*" / "day-0" / "*.jsonl*"),
        str(corpus / "**" / "s0001.jsonl.gz"), str(corpus / "nothing-*.jsonl"),
    ])
    assert files == sorted(set(files))
    assert all(os.path.basename(f).startswith("s") for f in files)
    assert str(corpus / "host-1" / "day-1" / "s0001.jsonl.gz") in files
    assert problems == [(str(corpus / "nothing-*.jsonl"), "no file matches")]


def test_an_engine_crash_on_one_file_is_reported_and_the_rest_go_on(tmp_path, monkeypatch):
    import reconcile.audit._runner as runner

    _write(tmp_path / "a.jsonl", generate(1, turns=3), compress=False)
    _write(tmp_path / "b.jsonl", generate(2, turns=3), compress=False)
    real = runner.check_document

    def crash_on_b(lines):
        document = real(lines)
        if document["lines"] and crash_on_b.calls == 1:
            raise ValueError("boom")
        crash_on_b.calls += 1
        return document

    crash_on_b.calls = 0
    monkeypatch.setattr(runner, "check_document", crash_on_b)
    report = audit([str(tmp_path)], workers=1)["report"]
    assert report["files"]["read"] == 1
    assert report["unreadable"][0]["error"] == "check failed: ValueError: boom"


def test_progress_counts_files_and_lines_as_they_finish(corpus):
    seen = []
    result = run_local(expand([str(corpus)])[0], 2, lambda *a: seen.append(a))
    assert [files for files, _, _ in seen] == sorted(files for files, _, _ in seen)
    assert seen[-1] == (FILES, FILES, sum(t["lines"] for _, t in result))


# ------------------------------------------------------------------ section 10 per file


def _lines(events) -> list[str]:
    return [json.dumps(e) for e in events]


def test_check_document_names_each_section_10_rule():
    history_callback = {"id": "m9", "catId": "opus", "origin": "callback", "content": "x"}
    draft = {"id": "draft-T9", "catId": "opus", "isDraft": True, "content": "partial",
             "extra": {"stream": {"invocationId": "T9"}}}
    events = [
        announce("T1"), chunk("a"),  # stream text without turnInvocationId: rule 3
        chunk("b", turnInvocationId="T1"),  # carries it: fine
        callback("final", None),  # no turn id: refused, rule 1
        done(),  # without turnInvocationId too: rule 3
        {"event": "history", "data": {"threadId": "t1", "messages": [history_callback, draft]}},
        {"event": "history", "data": {"threadId": "t1", "messages": []}},  # rule 5
    ]
    document = check_document(_lines(events))
    rules = {r["key"]: (r["rule"], r["count"], r["lines"], r["refusal"])
             for r in document["rules"]}
    assert rules == {
        "live_callback_without_turn": (1, 1, [4], True),
        "stored_callback_without_turn": (2, 1, [6], True),  # refused: nothing to tie it to
        "stream_without_turn_id": (3, 2, [2, 5], False),
        "draft_without_parent": (3, 1, [6], False),
        "empty_history": (5, 1, [7], False),
    }
    assert document["reasons"] == {"callback_without_invocation": 2}
    assert document["threads"]["t1"]["refused"] == 2
    assert (document["lines"], document["events"]) == (7, 7)


def test_a_clean_dual_id_trace_breaks_no_rule():
    events = [announce("T1"), chunk("a", turnInvocationId="T1"),
              callback("final", "T1", "m1"), done(turnInvocationId="T1")]
    document = check_document(_lines(events))
    assert document["rules"] == [] and document["reasons"] == {} and document["rejected"] == []


def test_strict_makes_advisories_fail():
    document = check_document(_lines([announce("T1"), chunk("a"), done()]))
    report = merge([file_record("a.jsonl", document)])
    assert [(r["rule"], r["key"]) for r in report["rules"]] == [(3, "stream_without_turn_id")]
    assert report["worst"][0]["advisories"] == 2  # the chunk and the done
    assert (exit_status(report), exit_status(report, strict=True)) == (0, 1)


# ------------------------------------------------------------------ command line and chart


def call(*argv):
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_cli_json_has_a_deterministic_report_and_a_separate_timing(corpus):
    status, text = call("audit", str(corpus), "--json", "--workers", "2")
    document = json.loads(text)
    assert set(document) == {"report", "timing"}
    assert document["report"] == json.loads(json.dumps(audit([str(corpus)], workers=1)["report"]))
    assert {"wall_seconds", "cpu_seconds", "lines_per_second", "slowest"} <= set(document["timing"])
    assert status == 1  # the corpus has refusals


def test_cli_summary_names_totals_rules_and_worst_files(corpus):
    status, text = call("audit", str(corpus), "--workers", "1", "--top", "3")
    assert status == 1
    assert text.startswith(f"audit of {FILES} files ({FILES} read, 0 unreadable)")
    assert "PROTOCOL section 10, rules broken:" in text
    assert "rule 3 (stream events without turnInvocationId" in text
    assert "worst files:" in text and "slowest files:" in text


def test_cli_clean_files_exit_0_and_nothing_to_audit_exits_2(tmp_path):
    clean = [json.dumps(e) for e in
             (announce("T1"), chunk("a", turnInvocationId="T1"), callback("ok", "T1", "m1"))]
    _write(tmp_path / "clean.jsonl", clean, compress=True)
    assert call("audit", str(tmp_path / "clean.jsonl"))[0] == 0
    assert call("audit", str(tmp_path / "nothing"))[0] == 2
    assert call("audit", str(tmp_path), "--chart", str(tmp_path / "c.txt"))[0] == 2
    assert call("audit", str(tmp_path), "--workers", "0")[0] == 2


def test_cli_unreachable_scheduler_is_a_usage_error(tmp_path, capsys):
    pytest.importorskip("dask.distributed", reason="dask.distributed not installed")
    _write(tmp_path / "a.jsonl", generate(1, turns=2), compress=False)
    from reconcile.audit import AuditError

    with pytest.raises(AuditError, match="cannot reach the Dask scheduler"):
        audit([str(tmp_path)], scheduler="tcp://127.0.0.1:9", connect_timeout=1)


def test_chart_html_is_deterministic_and_names_the_refusal_mix(corpus, tmp_path):
    report = audit([str(corpus)], workers=1)["report"]
    path = tmp_path / "mix.html"
    status, _ = call("audit", str(corpus), "--workers", "2", "--chart", str(path))
    page = path.read_text(encoding="utf-8")
    assert page == chart_html(report)
    for reason in report["reasons"]:
        assert reason in page
    assert "rule 3: stream events without turnInvocationId" in page


def test_chart_png(corpus, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib not installed")
    report = audit([str(corpus)], workers=1)["report"]
    write_chart(report, str(tmp_path / "mix.png"))
    assert (tmp_path / "mix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_document_judges_odd_lines_exactly_as_the_engine():
    lines = [
        json.dumps(announce("T1")).encode(), b"", b"   \r", b"not json", b"[1, 2]",
        b"\xef\xbb\xbf" + json.dumps(chunk("bom")).encode(),
        json.dumps(chunk("a", seq=10**30)).encode(),  # a 31-digit seq: the exact path
        json.dumps(chunk("b", timestamp=1234567890123456789)).encode(),
        json.dumps(callback("c", "T1", "m1")).encode(), b'{"event": "x", "data": {"a": NaN}}',
    ]
    engine = Reconciler()
    engine.feed(lines)
    document = check_document(lines)
    assert [(r["line"], r["reason"], r["detail"]) for r in document["rejected"]] == [
        (r.line, str(r.reason), r.detail) for r in engine.rejected
    ]
    assert (document["lines"], document["events"]) == (engine.lines, engine.stats.events)
    assert document["threads"]["t1"]["bubbles"] == len(engine.bubbles("t1"))


def test_a_worker_reads_a_large_file_in_flat_memory(tmp_path):
    import tracemalloc

    # Ignored events leave the engine's state as it is, so whatever memory grows with
    # the file would be the reader's or the audit's own.
    line = b'{"event": "heartbeat", "data": {"n": 1}}\n'
    data = line * 40_000
    (tmp_path / "big.jsonl").write_bytes(data)
    (tmp_path / "big.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))
    for name in ("big.jsonl", "big.jsonl.gz"):
        tracemalloc.start()
        try:
            record, _ = check_file(str(tmp_path / name))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert record["lines"] == 40_000
        assert peak < len(data) // 8  # 1.6 MB of trace; a few kB held at once


def test_cli_progress_counts_files_and_lines_on_stderr(corpus, capsys):
    status, _ = call("audit", str(corpus / "host-0"), "--progress", "--workers", "2")
    err = capsys.readouterr().err
    files = len(expand([str(corpus / "host-0")])[0])
    assert f"audit: {files:,}/{files:,} files," in err and err.endswith(" lines\n")
