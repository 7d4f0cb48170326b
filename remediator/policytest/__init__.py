"""`remediator test FILE...`: policy test files (SPEC "Policy test files"), like `promtool
test rules`. Each test runs the daemon's own pipeline on virtual time against stand-ins and
compares every decision it made with its `expect`. Exit 0: all pass; 1: a test failed;
2: a file is invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from remediator.errors import RemediatorError
from remediator.policytest.harness import CaseError, run_case
from remediator.policytest.load import InvalidTestFile, load_suite
from remediator.policytest.report import first_difference, made_lines
from remediator.policytest.vclock import StalledError

PASSED, FAILED, INVALID = 0, 1, 2


def run_files(paths: Sequence[Path], out: TextIO, err: TextIO) -> int:
    """Every test of every file; an invalid file is reported and the others still run."""
    status = PASSED
    passed = failed = 0
    for path in paths:
        try:
            suite = load_suite(path)
        except InvalidTestFile as exc:
            for line in exc.problems:
                print(line, file=err)
            print(f"{path}: INVALID", file=out)
            status = INVALID
            continue
        print(f"{path}", file=out)
        for case in suite.spec.tests:
            try:
                made = run_case(suite, case)
            except (CaseError, StalledError) as exc:
                problem, made_now = [str(exc)], None
            except RemediatorError as exc:  # the store or a part failed: the test cannot tell
                problem, made_now = [f"error: {type(exc).__name__}: {exc}"], None
            else:
                problem, made_now = first_difference(case.expect, made), made
            if not problem:
                passed += 1
                print(f"  PASS {case.name}", file=out)
                continue
            failed += 1
            status = max(status, FAILED)
            print(f"  FAIL {case.name}", file=out)
            lines = problem + (made_lines(made_now) if made_now is not None else [])
            for line in lines:
                print(f"       {line}", file=out)
    print(f"{passed} passed, {failed} failed", file=out)
    return status
