"""Resources, subscriptions, list changes and exit log messages over stdio (both eras)."""

from __future__ import annotations

import itertools
import json
import sys
import time
import warnings
from typing import Any

import anyio
import mcp_types as types
import pytest
from conftest import eventually
from mcp import Client, MCPError, StdioServerParameters
from support import SERVER_ARGV, mcp_client, server_env

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("frontend_mode")]

# Prints a numbered line every 50 ms for ~2 s, then exits 0.
CHATTY = "import time\nfor i in range(40):\n    print('line', i, flush=True); time.sleep(0.05)"


def notifications(client: Any, kind: type) -> list[Any]:
    return [m for m in client.messages if isinstance(m, kind)]


async def test_resources_are_listed_templated_and_readable() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": "sh", "args": ["-c", "printf '\\033[31mred\\033[0m\\nplain\\n'"]}
        )
        pid = started["id"]
        await client.ok("wait", {"id": pid})
        listed = {r.uri: r for r in (await client.session.list_resources()).resources}
        assert set(listed) == {f"process://{pid}", f"process://{pid}/log"}
        assert listed[f"process://{pid}"].mime_type == "application/json"
        assert listed[f"process://{pid}/log"].mime_type == "text/plain"
        templates = (await client.session.list_resource_templates()).resource_templates
        assert {t.uri_template for t in templates} == {"process://{id}", "process://{id}/log"}
        record = await client.session.read_resource(f"process://{pid}")
        data = json.loads(record.contents[0].text)
        assert (data["id"], data["status"], data["exitCode"]) == (pid, "exited", 0)
        log = await client.session.read_resource(f"process://{pid}/log")
        assert log.contents[0].text == "red\nplain\n"  # cleaned of ANSI codes
        with pytest.raises(MCPError, match="no process with id 'nope00'"):
            await client.session.read_resource("process://nope00/log")
        with pytest.raises(MCPError, match="unknown resource URI"):
            await client.session.read_resource("file:///etc/passwd")


async def test_log_resource_keeps_the_newest_64_kib() -> None:
    async with mcp_client() as client:
        script = "for i in range(5000): print(f'{i:06d}', 'x' * 40)"
        started = await client.ok("start", {"command": sys.executable, "args": ["-c", script]})
        await client.ok("wait", {"id": started["id"]})
        text = (
            (await client.session.read_resource(f"process://{started['id']}/log")).contents[0].text
        )
        assert len(text.encode()) <= 64 * 1024
        lines = text.splitlines()
        assert lines[0].startswith("[") and "earlier lines not shown" in lines[0]
        assert lines[-1].startswith("004999 ")
        first_kept = int(lines[1].split()[0])
        assert lines[0].startswith(f"[{first_kept} earlier lines")


async def test_subscribe_then_updated_at_most_once_a_second_then_read() -> None:
    async with mcp_client() as client:
        started = await client.ok("start", {"command": "sleep", "args": ["30"]})
        await client.ok("stop", {"id": started["id"]})
        chatty = await client.ok("start", {"command": sys.executable, "args": ["-c", CHATTY]})
        uri = f"process://{chatty['id']}/log"
        record_uri = f"process://{chatty['id']}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.session.subscribe_resource(uri)
            await client.session.subscribe_resource(record_uri)
        answer = await client.ok("wait", {"id": chatty["id"]})
        assert answer["status"] == "exited"

        def updates() -> list[float]:
            return [
                at
                for at, m in client.timed_messages
                if isinstance(m, types.ResourceUpdatedNotification) and m.params.uri == uri
            ]

        assert await eventually(lambda: len(updates()) >= 2, timeout=5)
        times = updates()
        # ~2 s of output at 20 lines/s: about one per second, plus one at exit.
        assert 2 <= len(times) <= 6, times
        spaced = [b - a for a, b in itertools.pairwise(times[:-1])]  # the exit one is extra
        assert all(gap >= 0.6 for gap in spaced), times  # 1 s, less delivery jitter
        text = (await client.session.read_resource(uri)).contents[0].text
        assert text.splitlines()[-1] == "line 39"
        # The record changes once, at exit; URIs nobody subscribed to are never notified.
        others = [
            m.params.uri
            for m in notifications(client, types.ResourceUpdatedNotification)
            if m.params.uri != uri
        ]
        assert others == [record_uri]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.session.unsubscribe_resource(uri)


async def test_list_changed_on_start_and_remove() -> None:
    async with mcp_client() as client:
        await client.session.list_resources()
        started = await client.ok("start", {"command": "true"})
        assert await eventually(
            lambda: notifications(client, types.ResourceListChangedNotification), timeout=5
        )
        count = len(notifications(client, types.ResourceListChangedNotification))
        await client.ok("wait", {"id": started["id"]})
        await client.ok("remove", {"id": started["id"]})
        assert await eventually(
            lambda: len(notifications(client, types.ResourceListChangedNotification)) > count,
            timeout=5,
        )
        caps = client.session.initialize_result.capabilities
        assert caps.resources.subscribe is True and caps.resources.list_changed is True
        assert caps.logging is not None


async def test_exit_is_logged_as_info_and_set_level_is_honoured() -> None:
    async with mcp_client() as client:
        first = await client.ok("start", {"command": "sh", "args": ["-c", "exit 3"]})
        await client.ok("wait", {"id": first["id"]})

        def logged() -> list[Any]:
            return [m.params for m in notifications(client, types.LoggingMessageNotification)]

        assert await eventually(logged, timeout=5)
        entry = logged()[0]
        assert entry.level == "info" and entry.logger == "process-mcp"
        assert entry.data["id"] == first["id"] and entry.data["exitCode"] == 3
        assert f"process {first['id']} (sh -c exit 3) crashed" in entry.data["message"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.session.set_logging_level("warning")
        second = await client.ok("start", {"command": "true"})
        await client.ok("wait", {"id": second["id"]})
        marker = await client.ok("start", {"command": "true", "notifyOnExit": True})
        assert await eventually(lambda: client.exits, timeout=5)  # later than any log message
        assert [p.data["id"] for p in logged()] == [first["id"]]
        await client.ok("wait", {"id": marker["id"]})


async def test_modern_era_listen_stream_gets_updates_and_list_changes() -> None:
    params = StdioServerParameters(command=SERVER_ARGV[0], args=SERVER_ARGV[1:], env=server_env())
    async with Client(params, mode="2026-07-28") as client:
        assert client.session.protocol_version == "2026-07-28"
        started = await client.call_tool(
            "start", {"command": sys.executable, "args": ["-c", CHATTY]}
        )
        pid = started.structured_content["id"]
        uri = f"process://{pid}/log"
        events: list[Any] = []
        async with client.listen(resources_list_changed=True, resource_subscriptions=[uri]) as sub:

            async def collect() -> None:
                async for event in sub:
                    events.append((time.monotonic(), event))

            async with anyio.create_task_group() as group:
                group.start_soon(collect)
                waited = await client.call_tool("wait", {"id": pid})
                assert waited.structured_content["status"] == "exited"
                assert await eventually(lambda: len(events) >= 2, timeout=5)
                other = await client.call_tool("start", {"command": "true"})
                assert await eventually(
                    lambda: any(type(e).__name__ == "ResourcesListChanged" for _, e in events),
                    timeout=5,
                )
                group.cancel_scope.cancel()
        updated = [e for _, e in events if type(e).__name__ == "ResourceUpdated"]
        assert updated and all(e.uri == uri for e in updated)
        assert len(updated) <= 6
        text = (await client.read_resource(uri)).contents[0].text
        assert text.splitlines()[-1] == "line 39"
        await client.call_tool("wait", {"id": other.structured_content["id"]})


async def test_modern_era_client_opting_in_gets_exits_as_log_messages() -> None:
    params = StdioServerParameters(command=SERVER_ARGV[0], args=SERVER_ARGV[1:], env=server_env())
    logged: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logged.append(params)

    async with Client(
        params, mode="2026-07-28", log_level="info", logging_callback=on_log
    ) as client:
        started = await client.call_tool("start", {"command": "sh", "args": ["-c", "exit 6"]})
        pid = started.structured_content["id"]
        waited = await client.call_tool("wait", {"id": pid})
        # The answer shows the exit itself, so 'events' does not repeat it; the
        # log message still rides this answer.
        assert waited.structured_content["status"] == "crashed"
        assert "events" not in waited.structured_content
        assert [(p.level, p.data["id"], p.data["exitCode"]) for p in logged] == [("info", pid, 6)]
