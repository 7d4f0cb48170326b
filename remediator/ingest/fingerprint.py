"""Alertmanager's alert fingerprint (prometheus/common `LabelSet.Fingerprint`), for old senders.

Alertmanager < 0.19 did not send `fingerprint`; computing the same FNV-1a hash over the
sorted label set lets those bodies dedup exactly like newer ones.
"""

from __future__ import annotations

from collections.abc import Mapping

_OFFSET64 = 14695981039346656037
_PRIME64 = 1099511628211
_MASK = 2**64 - 1
_SEPARATOR = 0xFF


def label_fingerprint(labels: Mapping[str, str]) -> str:
    digest = _OFFSET64
    for name in sorted(labels):
        for chunk in (name.encode(), labels[name].encode()):
            for byte in chunk:
                digest = ((digest ^ byte) * _PRIME64) & _MASK
            digest = ((digest ^ _SEPARATOR) * _PRIME64) & _MASK
    return f"{digest:016x}"
