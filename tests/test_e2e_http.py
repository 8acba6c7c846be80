"""``--transport http``: one long-lived server, several clients, a bearer token in front."""

from __future__ import annotations

import urllib.error
import urllib.request

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from support import HttpServer

pytestmark = pytest.mark.anyio


def post_status(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def call(url: str, token: str, tool: str, arguments: dict) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool(tool, arguments)
        assert not result.is_error, result.content[0].text
        return result.structured_content


async def test_two_clients_share_one_server_and_the_token_is_required() -> None:
    server = HttpServer("tok-123")
    try:
        json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        assert post_status(server.url, json_headers) == 401
        assert post_status(server.url, {**json_headers, "Authorization": "Bearer wrong"}) == 401
        started = await call(
            server.url, server.token, "start", {"command": "sleep", "args": ["300"]}
        )
        listed = await call(server.url, server.token, "list", {})
        assert [p["id"] for p in listed["processes"]] == [started["id"]]
    finally:
        server.close()  # SIGTERM: the sleep must be gone too (leak check)
