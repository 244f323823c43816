"""The run command's printed addresses."""
from __future__ import annotations

import pytest

from workers.supervisor import _url


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:8000/"),
    ("0.0.0.0", "http://127.0.0.1:8000/"),  # noqa: S104 - every IPv4 address: this machine's own
    ("::", "http://[::1]:8000/"),  # every IPv6 address (Flower's tornado: IPv6 only): ::1, not 127.0.0.1
    ("::1", "http://[::1]:8000/"),
    ("10.1.2.3", "http://10.1.2.3:8000/"),
    ("web.internal", "http://web.internal:8000/"),
])
def test_the_printed_address_reaches_a_server_listening_on_the_host(host: str, url: str) -> None:
    assert _url(host, 8000) == url
