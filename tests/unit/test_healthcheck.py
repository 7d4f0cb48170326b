"""The image's HEALTHCHECK finds /readyz where the config listens (remediator/healthcheck.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from remediator.addresses import parse_listen
from remediator.healthcheck import DEFAULT_LISTEN, listen_of, main, probe_url
from tests.fixtures.procs import free_port

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
def test_the_probe_url_is_the_listen_address_with_a_wildcard_made_loopback(
    listen: str, url: str
) -> None:
    assert probe_url(listen) == url
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


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # no access log
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    thread = threading.Thread(target=httpd.serve_forever, name="readyz")
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_the_check_passes_on_200_and_fails_on_anything_else_or_no_answer(
    tmp_path: Path, server: int
) -> None:
    config = tmp_path / "remediator.yaml"
    config.write_text(f'listen: "0.0.0.0:{server}"\n')
    assert main(["--config", str(config)]) == 0
    assert main(["--config", str(config), "--path", "/not-ready"]) == 1
    config.write_text(f'listen: "127.0.0.1:{free_port()}"\n')  # nothing listens there
    assert main(["--config", str(config), "--timeout", "1"]) == 1
