"""Origins: host names in their IDNA form and paths percent-encoded once, at configuration."""

from __future__ import annotations

import pytest

from sms_async import ConfigurationError, ItecPay
from sms_async._wire import Origin


@pytest.mark.parametrize(
    ("url", "host", "header"),
    [
        ("https://bücher.example/api/", "xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("https://BÜCHER.example:8443/", "xn--bcher-kva.example", "xn--bcher-kva.example:8443"),
        ("https://xn--bcher-kva.example/", "xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("https://gw.example/", "gw.example", "gw.example"),
        ("http://[::1]:8080/", "::1", "[::1]:8080"),
    ],
)
def test_host_names_become_their_ascii_form(url, host, header):
    """A non-ASCII host name is turned into its IDNA form once; ASCII ones and addresses stay as they are."""
    origin = Origin.parse(url)
    assert (origin.host, origin.host_header) == (host, header)


def test_a_host_name_idna_refuses_is_a_configuration_error():
    """A host name that is not a valid internationalised name is refused with advice."""
    with pytest.raises(ConfigurationError, match="xn--"):
        Origin.parse("https://☃.example/")


@pytest.mark.parametrize(
    ("path", "encoded"),
    [
        ("/api/", "/api/"),
        ("/sms api/", "/sms%20api/"),
        ("/ä/", "/%C3%A4/"),
        ("/a%20b/", "/a%20b/"),
        ("/100%/", "/100%25/"),
        ("/a:b@c;d=e,f/", "/a:b@c;d=e,f/"),
        ("/~user/x-y_z.json", "/~user/x-y_z.json"),
        ('/"<>^`{|}\\/', "/%22%3C%3E%5E%60%7B%7C%7D%5C/"),
    ],
)
def test_paths_are_percent_encoded_once(path, encoded):
    """A base path is percent-encoded; an escape already there is kept, so encoding again changes nothing."""
    origin = Origin.parse("https://gw.example" + path)
    assert origin.base_path == encoded
    assert Origin.parse("https://gw.example" + encoded).base_path == encoded


def test_joined_paths_are_encoded_too():
    """A path joined to the base (ItecPay's send and status paths) is encoded the same way."""
    driver = ItecPay(
        "u", "password-1", base_url="https://gw.example/v 1/", send_path="/sms send", status_path="ä"
    )
    assert driver.send_path == "/v%201/sms%20send"
    assert driver.status_path == "/v%201/%C3%A4"


@pytest.mark.parametrize("path", ["/send?key=1", "/send#top"])
def test_a_joined_path_with_a_query_or_fragment_is_refused(path):
    """A '?' or '#' in a configured path is refused: the driver builds the query itself."""
    with pytest.raises(ConfigurationError, match="query string"):
        ItecPay("u", "password-1", base_url="https://gw.example/", send_path=path)
