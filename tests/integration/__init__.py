"""Integration tests against real components started by tests.fixtures."""
