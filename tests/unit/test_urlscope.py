"""http.request scope: same scheme, host and port as an entry; the path glob never crosses `/`."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from yarl import URL

from remediator.core.policy import parse_policies
from remediator.core.urlscope import check_entry, out_of_scope, split_url, without_userinfo

CI = "https://ci.example.com/job/rollback-*/build"
HOOK = "http://127.0.0.1:8080/job/*/build"
QUERY = "https://ci.example.com/hook?deployment=*&token=*"


@pytest.mark.parametrize(
    ("url", "entry"),
    [
        ("https://ci.example.com/job/rollback-checkout/build", CI),
        ("https://CI.Example.COM/job/rollback-checkout/build", CI),  # host case-insensitive
        ("HTTPS://ci.example.com/job/rollback-checkout/build", CI),
        ("https://ci.example.com:443/job/rollback-checkout/build", CI),  # default port
        (
            "https://ci.example.com/job/rollback-checkout/build",
            "https://ci.example.com:443/job/rollback-*/build",
        ),
        ("http://127.0.0.1/x", "http://127.0.0.1:80/x"),
        ("http://127.0.0.1:8080/job/web/build", HOOK),
        ("http://127.0.0.1:8080/job/x@attacker/build", HOOK),  # `@` in a path is only data
        ("http://127.0.0.1:8080/job/a%20b/build", HOOK),
        ("http://127.0.0.1:8080/job/${secret:ci}/build", HOOK),  # unexpanded reference
        ("https://ci.example.com/hook?deployment=web&token=abc", QUERY),
        ("https://ci.example.com/hook#top", "https://ci.example.com/hook#*"),
        ("https://ci.example.com/hook", "https://ci.example.com/hook#*"),  # glob matches ""
        ("http://[::1]:9000/x", "http://[::1]:9000/*"),
        ("http://ci/a?b", "http://ci/a?b"),  # `?` and `[` are literal, never wildcards
        ("http://ci/a", "http://ci/a?*"),
    ],
)
def test_in_scope(url: str, entry: str) -> None:
    assert out_of_scope(url, ["http://other/x", entry]) is None


@pytest.mark.parametrize(
    ("url", "entry", "reason"),
    [
        ("http://127.0.0.1:8080/job/x/../deploy-prod/build", HOOK, ". or .. path segment"),
        ("http://127.0.0.1:8080/job/./build", HOOK, ". or .. path segment"),
        ("http://127.0.0.1:8080/job/%2e%2E/build", HOOK, ". or .. path segment"),
        ("http://127.0.0.1:8080/job/..;x/build", HOOK, ". or .. path segment"),
        ("http://127.0.0.1:8080/job/x%2F..%2Fprod/build", HOOK, "encoded / or \\"),
        ("http://127.0.0.1:8080/job/x%2f..%2fprod/build", HOOK, "encoded / or \\"),
        ("http://127.0.0.1:8080/job/x%5C..%5Cprod/build", HOOK, "encoded / or \\"),
        ("http://127.0.0.1:8080/job/x%5c/build", HOOK, "encoded / or \\"),
        ("http://127.0.0.1:8080/job/x%0d%0aX:1/build", HOOK, "encoded control character"),
        ("http://127.0.0.1:8080/job/x%zz/build", HOOK, "%XX escape"),
        ("http://127.0.0.1:8080/job/x\\..\\prod/build", HOOK, "backslash"),
        ("http://127.0.0.1:8080/job/a b/build", HOOK, "whitespace"),
        ("http://127.0.0.1:8080/job/a\tb/build", HOOK, "whitespace"),
        ("http://127.0.0.1:8080/job/\u00e9/build", HOOK, "non-ASCII"),
        ("http://127.0.0.1:8080/job/a/b/build", HOOK, "not in allow_targets"),  # * is one segment
        ("http://127.0.0.1:8080/job//build", HOOK, "empty path segment"),
        ("http://127.0.0.1:8080/job/a;b/build", HOOK, "not in allow_targets"),
        ("http://evil@127.0.0.1:8080/job/a/build", HOOK, "userinfo"),
        ("http://u:pw@127.0.0.1:8080/job/a/build", HOOK, "userinfo"),
        ("http://127.0.0.1:8080@evil:80/job/a/build", HOOK, "userinfo"),
        ("http://127.0.0.1:9090/job/a/build", HOOK, "not in allow_targets"),  # other port
        ("http://127.0.0.1/job/a/build", HOOK, "not in allow_targets"),
        ("https://127.0.0.1:8080/job/a/build", HOOK, "not in allow_targets"),  # other scheme
        ("http://localhost:8080/job/a/build", HOOK, "not in allow_targets"),  # literal host
        ("http://2130706433:8080/job/a/build", HOOK, "not in allow_targets"),
        ("http://127.0.0.1:8080:8080/job/a/build", HOOK, "malformed port"),
        ("http://127.0.0.1:99999/job/a/build", HOOK, "malformed port"),
        ("http://:8080/job/a/build", HOOK, "malformed or empty host"),
        ("http://127.0.0.1:8080/job/a/build?x=1", HOOK, "not in allow_targets"),
        ("http://127.0.0.1:8080/job/a/build?", HOOK, "not in allow_targets"),
        ("http://127.0.0.1:8080/job/a/build#x", HOOK, "not in allow_targets"),
        (
            "https://ci.example.com/hook?deployment=web&admin=1&token=x",
            QUERY,
            "not in allow_targets",
        ),
        (
            "https://ci.example.com/hook?deployment=web;admin=1&token=x",
            QUERY,
            "not in allow_targets",
        ),
        ("ftp://127.0.0.1:8080/job/a/build", HOOK, "not an http"),
        ("127.0.0.1:8080/job/a/build", HOOK, "not an absolute"),
        (
            "https://ci.example.com/job/rollback-x/build",
            "https://*.example.com/job/*/build",
            "not in allow_targets",
        ),
    ],
)
def test_out_of_scope(url: str, entry: str, reason: str) -> None:
    found = out_of_scope(url, [entry])
    assert found is not None and reason in found
    assert "pw@" not in found and "evil@" not in found  # userinfo is never shown


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("https://*.example.com/job/*", "no wildcard in the scheme, host or port"),
        ("http://127.0.0.1:*/job/*", "no wildcard in the scheme, host or port"),
        ("http*://ci/job/*", "no wildcard in the scheme, host or port"),
        ("*", "not an absolute"),
        ("web-*", "not an absolute"),
        ("ci.example.com/job/*", "not an absolute"),
        ("ftp://ci/x", "not an http"),
        ("https://user:pw@ci/x", "has userinfo"),
        ("https://ci/a/../b", ". or .. path segment"),
        ("https://ci/a%2Fb", "encoded /"),
        ("https:///x", "malformed or empty host"),
    ],
)
def test_entries_refused_at_load(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match="allow_targets entry") as caught:
        check_entry(entry)
    assert problem in str(caught.value)
    assert "pw@" not in str(caught.value)


def test_an_invalid_entry_allows_nothing() -> None:
    assert out_of_scope("https://ci.example.com/x", ["https://*.example.com/x"]) is not None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h/x?y@z", "https://h/x?y@z"),
        ("https://h/x@y", "https://h/x@y"),
        ("https://a@b@h:1#f", "https://h:1#f"),
        ("not a url", "not a url"),
    ],
)
def test_without_userinfo(url: str, shown: str) -> None:
    assert without_userinfo(url) == shown


def test_split_url_defaults() -> None:
    parts = split_url("HTTP://Ci.Example.com")
    assert (parts.scheme, parts.host, parts.port, parts.path) == ("http", "ci.example.com", 80, "/")
    assert parts.query is None and parts.fragment is None


# A label value made of the characters that matter to URL parsers, put where a policy puts it.
_PIECES = ["a", "b-1", ".", "..", "/", "%2e", "%2E", "%41", "%25", "%2F", "%5c", "%", "@", ":"]
_PIECES += ["?", "#", "&", ";", "=", "\\", " ", "\t", "token=", "8080", "127.0.0.1"]
_TRICKY = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=6).map("".join),
    st.text(alphabet="/.%2eEfF5cC@:?#&;=\\ab-_ \t", max_size=14),
)
_ENTRIES = [HOOK, "http://127.0.0.1:8080/job/*", "http://127.0.0.1:8080/*?token=*"]
_TEMPLATES = [
    "http://127.0.0.1:8080/job/{}/build",
    "http://127.0.0.1:8080/job/{}",
    "http://127.0.0.1:8080/{}",
    "http://{}127.0.0.1:8080/job/a/build",
    "http://127.0.0.1:8080{}/job/a/build",
    "http://127.0.0.1:{}/job/a/build",
    "{}",
]


@settings(max_examples=500)
@given(st.sampled_from(_TEMPLATES), _TRICKY, st.one_of(st.just(""), _TRICKY))
@example("http://127.0.0.1:8080{}/job/a/build", "?token=", "")  # an empty path: the root
def test_nothing_in_scope_escapes_its_entry(template: str, value: str, more: str) -> None:
    url = template.format(value) + more
    if out_of_scope(url, _ENTRIES) is not None:
        return
    # What aiohttp would make of it (yarl, normalising) and what urllib sees agree with us.
    for parsed in (URL(url), URL(url, encoded=True)):
        assert parsed.host == "127.0.0.1" and parsed.port == 8080
        assert parsed.user is None and parsed.password is None
    # Normalising (decoding %2e, collapsing dot segments) removes no segment.
    assert URL(url).raw_path.count("/") == URL(url, encoded=True).raw_path.count("/")
    split = urlsplit(url)
    assert split.hostname == "127.0.0.1" and split.port == 8080 and split.username is None
    path = unquote(split.path) or "/"  # an http URL's empty path is its root (RFC 9110 4.2.3)
    segments = path.split("/")[1:]
    assert not {".", ".."} & {s.split(";")[0] for s in segments}
    assert posixpath.normpath(path) == path.rstrip("/") or path == "/"
    assert "\\" not in path


def _check(action: str) -> list[str]:
    return parse_policies(f"name: p\naction: {action}", "p.yaml")[1]


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        (
            "{type: http.request, params: {url: 'https://ci/job/{{ labels.j }}'}, allow_targets: ['*']}",
            "allow_targets entry '*' is not an absolute http:// or https:// URL",
        ),
        (
            "{type: http.request, params: {url: 'https://ci/job/{{ labels.j }}'}, allow_targets: ['https://ci:*/job/*']}",
            "no wildcard in the scheme, host or port",
        ),
        (
            "{type: http.request, params: {url: 'https://ci/job/{{ labels.j }}'}}",
            "allow_targets is required: list the URLs",
        ),
        (
            "{type: http.request, params: {url: 'https://ci/job/x/../y'}, allow_targets: ['https://ci/job/*/y']}",
            "params.url: url 'https://ci/job/x/../y' has a . or .. path segment",
        ),
        (
            "{type: http.request, params: {url: 'https://other/job/x'}, allow_targets: ['https://ci/job/*']}",
            "is not in allow_targets",
        ),
        (
            "{type: http.request, params: {url: 'https://ci/x', expect_status: '3xx'}, allow_targets: ['https://ci/x']}",
            "a 3xx is never success",
        ),
        (
            "{type: http.request, params: {url: 'https://ci/x', timeout: 0s}, allow_targets: ['https://ci/x']}",
            "at most 10m (MAX_ACTION_TIMEOUT)",
        ),
        (
            "{type: http.request, params: {url: 'https://ci/x', body: '${HOME}'}, allow_targets: ['https://ci/x']}",
            "param 'body': '${' may only start a ${secret:NAME} reference",
        ),
        (
            "{type: docker.restart, params: {container: x, timeout: 11m}, allow_targets: ['x']}",
            "at most 10m (MAX_ACTION_TIMEOUT)",
        ),
    ],
)
def test_policy_load_checks(action: str, problem: str) -> None:
    problems = _check(action)
    assert any(problem in line for line in problems), problems


def test_a_policy_within_the_rule_loads() -> None:
    assert not _check(
        "{type: http.request, params: {url: 'https://ci.example.com/job/rollback-{{ labels.d }}/build',"
        " headers: {Authorization: 'Bearer ${secret:ci_token}'}, timeout: 10s},"
        " allow_targets: ['https://ci.example.com/job/rollback-*/build']}"
    )
