"""Issue 12 item 6: subscriptions only to existing resources, at most 1000 per session.

Before, 50 000 ``resources/subscribe`` to URIs of processes that do not exist were all
accepted (RSS 83 -> 441 MB): each held memory and nothing would ever update them."""

from __future__ import annotations

from support import RawServer

from process_mcp.core import limits


def test_subscribing_to_a_process_that_does_not_exist_is_an_error() -> None:
    server = RawServer()
    try:
        server.initialize()
        for uri in ("process://nosuch", "process://nosuch/log", "file:///etc/passwd"):
            answer = server.request("resources/subscribe", {"uri": uri})
            assert "list" in answer["error"]["message"], answer
        started = server.call_tool("start", {"command": "true"})["structuredContent"]
        answer = server.request("resources/subscribe", {"uri": f"process://{started['id']}/log"})
        assert "result" in answer, answer
    finally:
        server.kill()


def test_subscriptions_per_session_are_capped() -> None:
    """Over the cap with real URIs (two per process), sent as a burst of raw requests."""
    server = RawServer()
    try:
        server.initialize()
        uris = []
        while len(uris) <= limits.MAX_SUBSCRIPTIONS:
            started = server.call_tool("start", {"command": "true"})["structuredContent"]
            uris += [f"process://{started['id']}", f"process://{started['id']}/log"]
        answers = [server.request("resources/subscribe", {"uri": uri}) for uri in uris]
        accepted = [answer for answer in answers if "result" in answer]
        refused = [answer["error"]["message"] for answer in answers if "error" in answer]
        assert len(accepted) == limits.MAX_SUBSCRIPTIONS
        assert refused and all(f"limit is {limits.MAX_SUBSCRIPTIONS}" in m for m in refused)
        again = server.request("resources/subscribe", {"uri": uris[0]})  # held: no new one
        assert "result" in again, again
        server.request("resources/unsubscribe", {"uri": uris[0]})
        assert "result" in server.request("resources/subscribe", {"uri": uris[-1]})
    finally:
        server.kill()
