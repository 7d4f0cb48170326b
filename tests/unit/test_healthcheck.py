"""The image's HEALTHCHECK finds /readyz where the config listens (remediator/healthcheck.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.config import parse_listen
from remediator.healthcheck import DEFAULT_LISTEN, listen_of, readyz_url

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:9595", "http://127.0.0.1:9595/readyz"),
        ("0.0.0.0:9595", "http://127.0.0.1:9595/readyz"),
        (":8080", "http://127.0.0.1:8080/readyz"),
        ("[::]:9595", "http://[::1]:9595/readyz"),
        ("[::1]:9000", "http://[::1]:9000/readyz"),
        ("10.1.2.3:9595", "http://10.1.2.3:9595/readyz"),
        ("remediator.local:9595", "http://remediator.local:9595/readyz"),
    ],
)
def test_the_readyz_url_is_the_listen_address_with_a_wildcard_made_loopback(
    listen: str, url: str
) -> None:
    assert readyz_url(listen) == url
    # The same split as the daemon's own parse_listen, which it must never drift from.
    host, port = parse_listen(listen)
    loopback = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    assert url in (f"http://{loopback}:{port}/readyz", f"http://[{loopback}]:{port}/readyz")


def test_the_listen_address_comes_from_the_config_or_the_default(tmp_path: Path) -> None:
    assert listen_of(tmp_path / "absent.yaml") == DEFAULT_LISTEN
    (tmp_path / "empty.yaml").write_text("")
    assert listen_of(tmp_path / "empty.yaml") == DEFAULT_LISTEN
    (tmp_path / "c.yaml").write_text('listen: "0.0.0.0:7000"\ndry_run: true\n')
    assert listen_of(tmp_path / "c.yaml") == "0.0.0.0:7000"
    # The compose example's config, as the image's HEALTHCHECK reads it there.
    assert listen_of(REPO / "deploy" / "remediator.compose.yaml") == "0.0.0.0:9595"
