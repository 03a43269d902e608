"""The public surface is exactly what __all__ says; changing it is a deliberate act."""

import reconcile

EXPECTED = [
    "Reconciler", "ThreadBubbles", "LogView", "Stats",
    "check_lines", "CheckReport", "RuleReport", "ThreadCounts",
    "Bubble", "Origin", "Status", "Change", "BubbleAdded", "BubbleUpdated", "Update",
    "Rejected", "Superseded", "Duplicate", "Gap",
    "TurnOpened", "TurnClosed", "TurnEnd", "RunningTurn",
    "Event", "AgentMessage", "History", "OtherEvent", "announce", "stream", "callback", "done",
    "Reason", "ReconcileError", "LocalProtocolError", "FrozenInstanceError",
    "__version__",
]


def test_all_is_pinned():
    assert reconcile.__all__ == EXPECTED


def test_every_name_in_all_exists():
    for name in reconcile.__all__:
        assert hasattr(reconcile, name), name


def test_reasons_are_the_five_of_the_protocol():
    assert sorted(r.value for r in reconcile.Reason) == [
        "callback_without_invocation", "malformed_event", "malformed_line",
        "stream_after_done", "unbound_event"]


def test_engine_core_imports_no_clock_randomness_io_or_logging():
    import ast
    from pathlib import Path

    pkg = Path(reconcile.__file__).parent
    # Every core module, including ones added later (__main__ is the CLI's door).
    core = sorted(p.name for p in pkg.glob("_*.py") if p.name != "__main__.py")
    assert "_reconciler.py" in core and "_history.py" in core
    forbidden = {"time", "random", "os", "logging", "asyncio", "socket", "io", "datetime", "sys"}
    for name in core:
        tree = ast.parse((pkg / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not (mods & forbidden), f"{name} imports {mods & forbidden}"


def test_every_exception_raised_on_purpose_is_a_reconcile_error():
    from reconcile._wire import WireError, decode_json

    assert issubclass(reconcile.LocalProtocolError, reconcile.ReconcileError)
    assert issubclass(WireError, reconcile.ReconcileError)
    assert issubclass(WireError, ValueError), "callers catching ValueError keep working"
    try:
        decode_json(b"{nope")
    except reconcile.ReconcileError as exc:
        assert isinstance(exc, ValueError)
    else:
        raise AssertionError("decode_json accepted bad JSON")
