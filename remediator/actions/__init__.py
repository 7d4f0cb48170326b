"""Executors: the only code that changes the outside world."""
