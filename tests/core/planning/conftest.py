"""The planning tests use a lab of their own: the plan tests' module fixture (10 small VMs
replicated twice), one per module."""

from tests.core.plans.conftest import planlab

__all__ = ["planlab"]
