"""The agent's working set through the real server and the official SDK client: the default folder
(from roots, or the launch directory), slim answers, cheap and portable tool definitions, grep
answers in ``grep -n -C`` form, and the new wait, restart and start parameters."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from conftest import eventually
from support import Client, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("frontend_mode")]

LOOP = ("start", "wait", "get-log", "since", "stop")


def roots_of(*folders: Path) -> Any:
    """An SDK roots callback answering ``folders`` (read at each call, so a test may change
    the list), and the list of calls it got."""
    current = list(folders)
    calls: list[float] = []

    async def list_roots(ctx: Any) -> types.ListRootsResult:
        calls.append(time.monotonic())
        return types.ListRootsResult(roots=[types.Root(uri=f.as_uri()) for f in current])

    list_roots.current = current  # type: ignore[attr-defined]
    list_roots.calls = calls  # type: ignore[attr-defined]
    return list_roots


async def pwd_of(client: Client, **arguments: Any) -> tuple[str, list[str]]:
    """Start ``pwd`` and return (the cwd its answer shows, what it printed)."""
    started = await client.ok("start", {"command": "pwd", **arguments})
    ended = await client.ok("wait", {"id": started["id"]})
    assert ended["status"] == "exited", ended
    return started["cwd"], (await client.ok("get-log", {"id": started["id"]}))["lines"]


async def settle(client: Client, calls: list[float], count: int = 1) -> None:
    """Until the client has answered ``count`` roots/list requests, then one round trip:
    its answer is on the wire before the ping, so the server has read it."""
    assert await eventually(lambda: len(calls) >= count, 10)
    await client.session.send_ping()


# ------------------------------------------------------------- default folder
async def test_the_first_file_root_is_the_default_folder(tmp_path: Path) -> None:
    project, launch = tmp_path / "project", tmp_path / "launch"
    (project / "web").mkdir(parents=True)
    launch.mkdir()
    roots = roots_of(project, tmp_path)
    async with mcp_client(list_roots=roots, cwd=str(launch)) as client:
        await settle(client, roots.calls)
        assert await pwd_of(client) == (str(project), [str(project)])
        assert await pwd_of(client, cwd="web") == (str(project / "web"), [str(project / "web")])
        assert (await pwd_of(client, cwd=str(launch)))[0] == str(launch)


async def test_roots_are_asked_again_when_they_change(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    roots = roots_of(first)
    async with mcp_client(list_roots=roots, cwd=str(tmp_path)) as client:
        await settle(client, roots.calls)
        assert (await pwd_of(client))[0] == str(first)
        roots.current[:] = [tmp_path / "missing", second]  # the first local directory counts
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # roots are deprecated at 2026-07-28
            await client.session.send_roots_list_changed()
        await settle(client, roots.calls, 2)
        assert (await pwd_of(client))[0] == str(second)


async def test_a_client_without_roots_gets_the_launch_directory(tmp_path: Path) -> None:
    async with mcp_client(cwd=str(tmp_path)) as client:
        await client.session.send_ping()
        assert await pwd_of(client) == (str(tmp_path), [str(tmp_path)])
        (tmp_path / "sub").mkdir()
        assert (await pwd_of(client, cwd="sub"))[0] == str(tmp_path / "sub")


async def test_the_first_start_after_initialize_runs_in_the_root(tmp_path: Path) -> None:
    """A start sent right after initialize, while the client takes its time to answer
    roots/list, waits for that answer (at most 1 s) instead of running in the launch
    directory."""
    project, launch = tmp_path / "project", tmp_path / "launch"
    project.mkdir()
    launch.mkdir()
    asked = anyio.Event()

    async def slowly(ctx: Any) -> types.ListRootsResult:
        asked.set()
        await anyio.sleep(0.5)
        return types.ListRootsResult(roots=[types.Root(uri=project.as_uri())])

    async with mcp_client(list_roots=slowly, cwd=str(launch)) as client:
        with anyio.fail_after(10):
            await asked.wait()  # the question is in flight
        assert await pwd_of(client) == (str(project), [str(project)])  # no settle first


async def test_roots_that_are_never_answered_never_delay_a_tool_call(tmp_path: Path) -> None:
    asked = anyio.Event()

    async def never_answers(ctx: Any) -> types.ListRootsResult:
        asked.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with mcp_client(list_roots=never_answers, cwd=str(tmp_path)) as client:
        with anyio.fail_after(10):
            await asked.wait()
        began = time.monotonic()
        started = await client.ok("start", {"command": "pwd"})
        # The server gives roots 5 s; a start waits for them 1 s at most.
        assert time.monotonic() - began < 3
        assert started["cwd"] == str(tmp_path)
        listed = await client.ok("list")
        assert [p["id"] for p in listed["processes"]] == [started["id"]]


# ---------------------------------------------------------------- slim answers
async def test_answers_leave_defaults_out(tmp_path: Path) -> None:
    async with mcp_client(cwd=str(tmp_path)) as client:
        started = await client.ok("start", {"command": "sleep", "args": ["30"]})
        assert set(started) == {"id", "pid", "status", "command", "args", "cwd"}
        labelled = await client.ok(
            "start", {"command": "sleep", "args": ["30"], "label": "w", "stdin": "pipe"}
        )
        assert (labelled["label"], labelled["stdin"]) == ("w", "pipe")
        assert "shell" not in labelled and "timeoutSeconds" not in labelled
        status = await client.ok("get-status", {"id": started["id"]})
        assert "exitCode" not in status and "endedAt" not in status  # running
        assert "restarts" not in status and "timedOut" not in status
        stopped = await client.ok("stop", {"id": started["id"]})
        assert set(stopped) == {"id", "pid", "status", "exitCode", "signal", "treeGone"}
        assert (stopped["exitCode"], stopped["signal"]) == (None, "SIGTERM")  # ended: both
        ended = await client.ok("get-status", {"id": started["id"]})
        assert ended["exitCode"] is None and ended["endedAt"].endswith("Z")
        assert "cpuPercent" not in ended  # no live facts once ended
        await client.ok("stop", {"id": labelled["id"]})


async def test_stop_does_not_repeat_its_own_exit_in_events(tmp_path: Path) -> None:
    go = tmp_path / "go"
    # Ends only once its start has answered: an end seen before that answer is made comes
    # with it (the posix backend can reap so fast), and this test is about stop's answer.
    script = f"while [ ! -e {go} ]; do sleep 0.01; done; exit 3"
    async with mcp_client() as client:
        running = await client.ok("start", {"command": "sleep", "args": ["30"]})
        quick = await client.ok(
            "start", {"command": "sh", "args": ["-c", script], "notifyOnExit": True}
        )
        assert "events" not in quick
        go.touch()
        assert await eventually(lambda: client.exits, 10)  # quick ended; no answer told it
        stopped = await client.ok("stop", {"id": running["id"]})
        assert stopped["status"] == "stopped"
        assert [event["id"] for event in stopped["events"]] == [quick["id"]]
        assert "events" not in await client.ok("list")  # nor later: stop's answer told it
        again = await client.ok("restart", {"id": running["id"]})
        assert "events" not in again  # the stop inside a restart is its own too
        await client.ok("stop", {"id": running["id"]})


# ------------------------------------------------------------ tool definitions
def _walk_properties(schema: dict[str, Any], where: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, prop in schema.get("properties", {}).items():
        found.append((f"{where}.{name}", prop))
        found.extend(_walk_properties(prop, f"{where}.{name}"))
        if isinstance(prop.get("items"), dict):
            found.append((f"{where}.{name}[]", prop["items"]))
            found.extend(_walk_properties(prop["items"], f"{where}.{name}[]"))
    return found


async def test_tool_definitions_are_small_and_portable() -> None:
    async with mcp_client() as client:
        listed = await client.session.list_tools()
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    visible = [
        {
            "name": t.name,
            "title": t.title,
            "description": t.description,
            "inputSchema": t.input_schema,
        }
        for t in listed.tools
    ]
    assert len(json.dumps(visible, **compact).encode()) <= 8 * 1024
    whole = listed.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert len(json.dumps(whole, **compact).encode()) <= 16 * 1024
    for tool in listed.tools:
        text = json.dumps(tool.input_schema)
        for banned in ('"anyOf"', '"oneOf"', '"allOf"', '"$ref"', '"$defs"', "exclusiveM"):
            assert banned not in text, f"{tool.name}: {banned} in {text}"
        for where, prop in _walk_properties(tool.input_schema, tool.name):
            assert isinstance(prop.get("type"), str), f"{where} has no single type: {prop}"
            assert prop.get("default", 0) is not None, f"{where} has default null"
    descriptions = " ".join(tool.description or "" for tool in listed.tools)
    start = next(t.description for t in listed.tools if t.name == "start") or ""
    positions = [start.find(word) for word in LOOP]
    assert -1 not in positions and positions == sorted(positions), start  # taught in order
    assert descriptions.count("since=nextCursor") == 1  # the loop is taught once


# -------------------------------------------------------------------- grep form
async def test_grep_answers_read_like_grep_n_c() -> None:
    code = "for i in range(1, 31): print('ERROR' if i in (5, 6, 20) else f'ok {i}')"
    async with mcp_client() as client:
        started = await client.ok("start", {"command": sys.executable, "args": ["-c", code]})
        await client.ok("wait", {"id": started["id"]})
        found = await client.ok("get-log", {"id": started["id"], "grep": "ERROR", "context": 1})
        assert found["lines"] == [
            "4-ok 4", "5:ERROR", "6:ERROR", "7-ok 7", "--", "19-ok 19", "20:ERROR", "21-ok 21",
        ]  # fmt: skip
        plain = await client.ok("get-log", {"id": started["id"], "grep": "ERROR"})
        assert plain["lines"] == ["5:ERROR", "6:ERROR", "20:ERROR"]


# ------------------------------------------------------------------------ wait
async def test_wait_is_honest_about_a_process_that_ended() -> None:
    prompt = "print('Apply? [y/N] ', end='', flush=True); import sys; sys.exit(1)"
    async with mcp_client() as client:
        started = await client.ok("start", {"command": sys.executable, "args": ["-c", prompt]})
        await client.ok("wait", {"id": started["id"]})  # it crashed at once (stdin: EOF)
        answer = await client.ok("wait", {"id": started["id"], "pattern": r"\[y/N\]"})
        assert (answer["met"], answer["reason"], answer["status"]) == (False, "exited", "crashed")
        assert answer["matchedLine"] == "Apply? [y/N] "
        assert answer["tail"] == ["Apply? [y/N] "] and answer["exitCode"] == 1


async def test_wait_tail_lines_and_next_cursor_follow_on_with_get_log() -> None:
    async with mcp_client() as client:
        started = await client.ok(
            "start", {"command": "sh", "args": ["-c", "seq 1 30; echo ready; exec sleep 30"]}
        )
        met = await client.ok("wait", {"id": started["id"], "pattern": "^ready"})
        assert met["met"] and "tail" not in met and met["nextCursor"] == 31
        asked = await client.ok("wait", {"id": started["id"], "pattern": "^ready", "tailLines": 2})
        assert asked["tail"] == ["30", "ready"]
        missed = await client.ok(
            "wait", {"id": started["id"], "pattern": "never", "timeoutSeconds": 0.2}
        )
        assert len(missed["tail"]) == 20 and missed["tail"][-1] == "ready"
        after = await client.ok("get-log", {"id": started["id"], "since": met["nextCursor"]})
        assert after["lines"] == [] and after["nextCursor"] == 31
        await client.ok("stop", {"id": started["id"]})


async def test_wait_for_any_or_all_of_several_ids() -> None:
    async with mcp_client() as client:
        quick = await client.ok("start", {"command": "sh", "args": ["-c", "sleep 0.5; exit 2"]})
        slow = await client.ok("start", {"command": "sleep", "args": ["30"]})
        ids = [quick["id"], slow["id"]]
        anyone = await client.ok("wait", {"ids": ids, "mode": "any", "tailLines": 5})
        assert (anyone["met"], anyone["reason"]) == (True, "exited")
        assert anyone["ended"] == [
            {"id": quick["id"], "status": "crashed", "exitCode": 2, "signal": None}
        ]  # no output, so no tail even though asked
        assert anyone["running"] == [slow["id"]] and "events" not in anyone
        every = await client.ok("wait", {"ids": ids, "mode": "all", "timeoutSeconds": 0.3})
        assert (every["met"], every["reason"], every["running"]) == (False, "timeout", [slow["id"]])
        for bad, says in [
            ({"ids": ids, "pattern": "x"}, "'ids' waits for processes to end"),
            ({"id": slow["id"], "ids": ids}, "not both"),
            ({"id": slow["id"], "mode": "all"}, "'mode' applies to 'ids'"),
            ({}, "needs 'id'"),
            ({"ids": ["nope00"]}, "nope00"),
        ]:
            assert says in await client.fail("wait", bad)
        await client.ok("stop", {"id": slow["id"]})


# ------------------------------------------------------------- restart, reuse
async def test_restart_with_stdin_pipe_then_answer_the_prompt(tmp_path: Path) -> None:
    prompt = (
        "import sys; print('Apply? [y/N] ', end='', flush=True); "
        "print('applied' if sys.stdin.readline().strip() == 'y' else 'aborted')"
    )
    async with mcp_client(cwd=str(tmp_path)) as client:
        started = await client.ok("start", {"command": sys.executable, "args": ["-c", prompt]})
        await client.ok("wait", {"id": started["id"]})
        again = await client.ok("restart", {"id": started["id"], "stdin": "pipe"})
        assert (again["id"], again["stdin"], again["restarts"]) == (started["id"], "pipe", 1)
        ready = await client.ok("wait", {"id": started["id"], "pattern": r"\[y/N\] $"})
        assert ready["met"] and ready["status"] == "running"
        await client.ok("send-input", {"id": started["id"], "text": "y\n"})
        assert (await client.ok("wait", {"id": started["id"]}))["status"] == "exited"
        log = await client.ok("get-log", {"id": started["id"], "since": ready["nextCursor"]})
        assert log["lines"][-1].endswith("applied")
        moved = await client.ok(
            "restart", {"id": started["id"], "args": ["-c", "pass"], "cwd": "."}
        )
        assert moved["args"] == ["-c", "pass"] and moved["cwd"] == str(tmp_path)


async def test_start_reuse_answers_the_running_labelled_process() -> None:
    async with mcp_client() as client:
        web = {"command": "sleep", "args": ["30"], "label": "web", "reuse": True}
        first = await client.ok("start", web)
        assert "reused" not in first
        second = await client.ok("start", web)
        assert (second["id"], second["reused"]) == (first["id"], True)
        assert len((await client.ok("list"))["processes"]) == 1
        assert "needs a 'label'" in await client.fail("start", {"command": "true", "reuse": True})
        await client.ok("stop", {"id": first["id"]})


# ------------------------------------------------------------------------ list
async def test_list_is_a_one_line_summary() -> None:
    async with mcp_client() as client:
        long = await client.ok("start", {"command": "sh", "args": ["-c", "exit 1", "y" * 300]})
        web = await client.ok("start", {"command": "sleep", "args": ["30"], "label": "web"})
        await client.ok("wait", {"id": long["id"]})
        listed = (await client.ok("list"))["processes"]
        assert [p["id"] for p in listed] == [long["id"], web["id"]]
        ended, running = listed
        assert len(ended["command"]) == 120 and ended["command"].startswith("sh -c 'exit 1' yy")
        assert (ended["status"], ended["exitCode"], ended["signal"]) == ("crashed", 1, None)
        assert set(running) == {"id", "pid", "status", "label", "command", "startedAt", "owner"}
        assert (running["label"], running["command"]) == ("web", "sleep 30")
        await client.ok("stop", {"id": web["id"]})
