"""The naive reference model (it lives in ``reconcile.testing`` so ``simulate --expected`` can use it)."""

from reconcile.testing.reference import activity, replay

__all__ = ["replay", "activity"]
