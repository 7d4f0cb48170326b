"""End-to-end: the daemon as a subprocess, real Alertmanagers, a real Docker engine."""
