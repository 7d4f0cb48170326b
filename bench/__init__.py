"""Load benchmarks for the remediator daemon."""
