"""`redact_url` returns most check URLs untouched without parsing them: that shortcut must
give exactly what the full redaction gives, for any text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from checks.redact import _redact_parsed, redact_url

_schemes = st.sampled_from(["http", "https", "HTTP", "Https", "svn+ssh", "x-1.y"])
_hosts = st.one_of(
    st.from_regex(r"[a-zA-Z0-9.-]{0,20}", fullmatch=True),
    st.sampled_from(["127.0.0.1", "[::1]", "shop.example", "Shop.Example", "xn--bcher-kva.ch"]),
)
_ports = st.one_of(
    st.just(""),
    st.integers(min_value=0, max_value=99999).map(lambda port: f":{port}"),
    st.sampled_from([":0080", ":", ":x", ":65535", ":65536"]),
)
_userinfo = st.sampled_from(["", "u@", "u:pw@", "@", "a@b@"])
_paths = st.one_of(
    st.just(""),
    st.text(alphabet="/abcAB-_.~%é@ \t\n\r\\+:;=", max_size=20).map(lambda p: "/" + p),
)
_tails = st.sampled_from(["", "?", "?token=s3cret", "#frag", "?a=1#f", "#"])


@st.composite
def _urls(draw: st.DrawFn) -> str:
    return (
        f"{draw(_schemes)}://{draw(_userinfo)}{draw(_hosts)}{draw(_ports)}"
        f"{draw(_paths)}{draw(_tails)}"
    )


@settings(max_examples=3000)
@given(_urls())
def test_the_shortcut_agrees_with_the_full_redaction_on_url_like_text(url: str) -> None:
    assert redact_url(url) == _redact_parsed(url)


@settings(max_examples=1000)
@given(st.text(max_size=60))
def test_the_shortcut_agrees_with_the_full_redaction_on_any_text(text: str) -> None:
    assert redact_url(text) == _redact_parsed(text)
    assert redact_url("http://" + text) == _redact_parsed("http://" + text)


def test_plain_check_urls_stay_as_they_are_and_secrets_go() -> None:
    for url in (
        "http://127.0.0.1:8081/",
        "https://shop.acme.example/checkout/cart",
        "https://shop.acme.example",
        "http://10.0.0.1:65535/health-check_v2.json",
    ):
        assert redact_url(url) == url
    assert redact_url("https://u:pw@shop.example:8443/h?t=1") == "https://shop.example:8443/h?…"
