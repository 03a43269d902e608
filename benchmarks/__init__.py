"""Benchmarks for reconcile: plain scripts with fixed seeds, never collected by pytest.

Run them all (about four minutes on a 2-core machine) with::

    python -m benchmarks.run            # prints the table, writes benchmarks/results/latest.json
    python -m benchmarks.run --plot     # also draws docs/scaling.png (needs matplotlib)

Each figure has its own module (``bench_decode``, ``bench_engine``, ``bench_scaling``,
``bench_peers``, ``bench_memory``) that can be run alone with ``python -m``.
See benchmarks/README.md for what each figure measures and the latest results.
"""
