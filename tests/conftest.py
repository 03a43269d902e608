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
