"""TEMPORARY: installs tests/_turn_shim.py in subprocesses the client tests start."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _turn_shim  # noqa: E402

_turn_shim.ACTIVE = True
