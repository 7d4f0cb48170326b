"""Checks against metrics: conditions re-checked before acting, recovery verified after."""
