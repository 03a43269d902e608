"""Test support that ships with the package: the trace generator and the naive model.

* :mod:`reconcile.testing.simulate`: seeded, realistic, racy traces (``reconcile
  simulate``).
* :mod:`reconcile.testing.reference`: the deliberately naive reference model of the
  protocol, the oracle the engine is tested against (``reconcile simulate --expected``).

Neither is needed to embed the engine, and neither is imported by it.
"""
