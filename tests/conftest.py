"""Hypothesis profiles: random exploration for developers, a fixed sequence in CI.

On a developer's machine every run explores new examples (and replays the failures
it saved in .hypothesis/). CI sets CI=true: there the examples are derandomized, so
the gate that decides whether a change lands checks the same cases every time and a
red run is reproducible. Longer hunts: RECONCILE_HYPOTHESIS_SCALE=N (tests/strategies.py).
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")


# Fast first: the unit tests that would fail first run before the slow layers, so a
# broken change stops the suite (-x) or shows its first failure within seconds.
# Modules not named here run in the middle tier.
_TIERS = {
    0: ("test_wire", "test_turns", "test_events", "test_bubbles", "test_public_api",
        "test_reconciler", "test_history", "test_races", "test_contract", "test_layers",
        "test_errors", "test_wire_rules", "test_engine_edges", "test_change_stream",
        "test_check_report", "test_seq_and_envelope", "test_event_builders", "test_changes",
        "test_values", "test_shortcuts", "test_view"),
    1: ("test_conformance", "test_real_server_captures", "test_real_server_recordings",
        "test_check_observer",
        "test_cli", "test_startup", "test_readme", "test_docs", "test_hot_path"),
    3: ("test_properties", "test_robustness", "test_simulate", "test_stateful",
        "test_typing"),
    4: ("test_client", "test_client_clowder", "test_audit", "test_mutants"),
}
_TIER_OF = {name: tier for tier, names in _TIERS.items() for name in names}


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest's signature
    def tier(item):
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        return _TIER_OF.get(module, 2)

    items.sort(key=tier)  # stable: keeps file and definition order inside a tier
