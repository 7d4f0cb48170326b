"""RFC3339 timestamps with nanoseconds, as Go writes them, kept exact for episode keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

_FRACTION = re.compile(
    r"^(?P<head>[^.]+T\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)$",
    re.ASCII,  # \d must not admit other scripts' digits
)
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


# Repeats carry the same startsAt over and over; parsing it once per value is enough.
@lru_cache(maxsize=8192)
def parse_rfc3339_ns(text: str) -> tuple[datetime, int]:
    """(UTC datetime truncated to µs, exact Unix nanoseconds). ValueError if not RFC3339."""
    found = _FRACTION.match(text.strip())
    if found is None:
        raise ValueError(f"not an RFC3339 timestamp: {text!r}")
    zone = "+00:00" if found["zone"] == "Z" else found["zone"]
    try:
        whole = datetime.fromisoformat(found["head"] + zone).astimezone(UTC)
    except (ValueError, OverflowError):
        # 0001-01-01T00:00:00+01:00 is before year 1 in UTC: Python cannot hold it.
        raise ValueError(f"timestamp out of range: {text!r}") from None
    digits = (found["frac"] or "")[:9].ljust(9, "0")
    nanos = int(digits)
    # Integer arithmetic: the same instant written in two time zones gives the same key.
    unix_ns = (int((whole - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**9) + nanos
    return whole.replace(microsecond=nanos // 1000), unix_ns
