"""The naive reference model (it lives in the package so ``simulate`` can use it)."""

from reconcile._reference import replay

__all__ = ["replay"]
