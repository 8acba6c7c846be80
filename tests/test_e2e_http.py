"""``--transport http``: one long-lived server, several clients, a bearer token in front."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from support import HttpServer, call_over_http

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("frontend_mode")]


def post_status(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def test_two_clients_share_one_server_and_the_token_is_required() -> None:
    server = HttpServer("tok-123")
    try:
        json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        assert post_status(server.url, json_headers) == 401
        assert post_status(server.url, {**json_headers, "Authorization": "Bearer wrong"}) == 401
        started = await call_over_http(
            server.url, server.token, "start", {"command": "sleep", "args": ["300"]}
        )
        listed = await call_over_http(server.url, server.token, "list", {})
        assert [p["id"] for p in listed["processes"]] == [started["id"]]
    finally:
        server.close()  # SIGTERM: the sleep must be gone too (leak check)
