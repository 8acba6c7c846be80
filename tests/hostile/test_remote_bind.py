"""Binding beyond loopback: refused without ``--allow-remote``; with it, the
Host/Origin checks (DNS-rebinding protection) stay on for the names given. A loopback
address other than 127.0.0.1 keeps them too."""

from __future__ import annotations

import subprocess
import sys

from support import HttpServer, HttpSession, best_ms, server_env

HTTP_ARGV = [sys.executable, "-m", "process_mcp", "--transport", "http", "--port", "0"]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "rebinding", "version": "0"},
    },
}


def test_binding_all_interfaces_needs_allow_remote() -> None:
    try:
        result = subprocess.run(
            [*HTTP_ARGV, "--host", "0.0.0.0"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=server_env(PROCESS_MCP_TOKEN="tok-remote"),
            timeout=30,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"bound 0.0.0.0 without --allow-remote: {exc.stderr!r}") from None
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--allow-remote" in lines[0], result.stderr


def status_with(session: HttpSession, **headers: str) -> int:
    fresh = HttpSession(session.url, session.token, initialize=False)
    try:
        return fresh.post(INITIALIZE, **headers).status_code
    finally:
        fresh.close()


def test_allow_remote_keeps_host_and_origin_checks_for_the_names_given() -> None:
    server = HttpServer("tok-remote", "--host", "0.0.0.0", "--allow-remote", "devbox.example")
    session = HttpSession(server.url, server.token)  # Host 127.0.0.1:PORT: still allowed
    try:
        port = server.port
        assert status_with(session, Host=f"devbox.example:{port}") == 200
        assert status_with(session, Host="devbox.example") == 200
        assert status_with(session, Host=f"evil.example:{port}") == 421  # a rebound name
        assert status_with(session, Origin="http://evil.example") == 403  # a foreign page
        assert status_with(session, Origin=f"http://devbox.example:{port}") == 200
        assert best_ms(lambda: session.request("ping")) < 100
    finally:
        session.close()
        server.close()


def test_other_loopback_addresses_keep_host_checks() -> None:
    server = HttpServer("tok-remote", "--host", "127.0.0.2")
    session = HttpSession(server.url.replace("127.0.0.1", "127.0.0.2"), server.token)
    try:
        assert status_with(session, Host=f"evil.example:{server.port}") == 421
        assert status_with(session, Host=f"127.0.0.2:{server.port}") == 200
    finally:
        session.close()
        server.close()
