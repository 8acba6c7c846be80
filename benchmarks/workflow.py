"""What an agent pays: six everyday tasks over the official SDK client, counting tool calls
and answer bytes (the JSON text of each answer: what reaches the model), plus the size of
``tools/list`` (paid once per session).

The agent's moves are fixed per task and decided only from what the answers say (no
peeking at the server), so two versions of the server can be compared on the same tasks:

1. dev server: start (label) → wait for "ready" → stop;
2. failing build: start → wait for the end → grep the error lines with context;
3. watcher: start → read its log → three times: touch a file, wait for the rebuild, read
   only the new lines (``since``);
4. crash at start: start → wait for "ready" → learn why it died;
5. prompt: start (stdin not piped) → wait for the prompt → if it never could be answered,
   run it again with stdin piped (``restart`` with overrides when the tool offers them,
   else a new ``start``) → wait for the prompt → answer it → wait for the end;
6. end of session: list → stop what still runs → list.

The server is launched in a scratch project folder and every ``start`` omits ``cwd``.
Run: ``uv run python benchmarks/workflow.py``
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
from _harness import SERVER, machine, table
from mcp import ClientSession, StdioServerParameters, stdio_client

SCRIPTS = {
    "devserver.py": """
        import http.server, sys
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a): pass
        print("\\x1b[1m> web@1.0.0 dev\\x1b[0m", flush=True)
        print("  loading plugins: react, router, env", flush=True)
        print("  \\x1b[33mwarn\\x1b[0m: browserslist data is 9 months old", flush=True)
        server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
        print(f"  \\x1b[32mready\\x1b[0m on http://127.0.0.1:{server.server_port}/", flush=True)
        server.serve_forever()
    """,
    "build.py": """
        import sys
        for n in range(1, 151):
            print(f"[{n:3}/150] compiling src/module{n}.ts", flush=True)
            if n in (40, 97, 120):
                print(f"src/module{n}.ts:12:5 - error TS2322: Type 'string' is not "
                      "assignable to type 'number'.", flush=True)
                print("12     count = \\"3\\";", flush=True)
                print("       ~~~~~", flush=True)
        print("Found 3 errors.", flush=True)
        sys.exit(2)
    """,
    "watcher.py": """
        import os, time
        print("watching src/ for changes", flush=True)
        k = 1
        while True:
            if os.path.exists(f"trigger-{k}"):
                print(f"change detected: src/page{k}.tsx", flush=True)
                print("rebuilding...", flush=True)
                print(f"  dist/page{k}.js  12.{k} kB", flush=True)
                print(f"compiled #{k} in 4{k} ms", flush=True)
                k += 1
            time.sleep(0.02)
    """,
    "api.py": """
        import sys
        print("api: starting", flush=True)
        print("api: loading config from ./config.yml", flush=True)
        print("Traceback (most recent call last):", file=sys.stderr)
        print('  File "api.py", line 12, in <module>', file=sys.stderr)
        print("    config = load('config.yml')", file=sys.stderr)
        print("FileNotFoundError: [Errno 2] No such file or directory: 'config.yml'",
              file=sys.stderr, flush=True)
        sys.exit(1)
    """,
    "migrate.py": """
        import sys
        print("connected to postgres://localhost/app", flush=True)
        print("3 pending migrations: 0042_users, 0043_orders, 0044_index", flush=True)
        print("Apply 3 migrations? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline()
        if answer.strip().lower() != "y":
            print("\\nAborted.", flush=True)
            sys.exit(1)
        for name in ("0042_users", "0043_orders", "0044_index"):
            print(f"applied {name}", flush=True)
        print("done", flush=True)
    """,
}


class Agent:
    """A session that counts what the agent pays for each task."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.calls = 0
        self.bytes = 0
        self.log: list[str] = []

    async def call(self, tool: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        result = await self.session.call_tool(tool, arguments)
        text = "".join(block.text for block in result.content if block.type == "text")
        self.calls += 1
        self.bytes += len(text.encode())
        self.log.append(f"{tool} {json.dumps(arguments)} -> {text}")
        if result.is_error:
            return {"error": text}, True
        return json.loads(text), False

    async def ok(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        answer, failed = await self.call(tool, arguments)
        assert not failed, answer
        return answer


async def dev_server(agent: Agent, tools: dict[str, Any]) -> None:
    started = await agent.ok(
        "start", {"command": "python3", "args": ["devserver.py"], "label": "web"}
    )
    ready = await agent.ok("wait", {"id": started["id"], "pattern": "ready on"})
    assert ready["met"], ready
    await agent.ok("stop", {"id": started["id"]})


async def failing_build(agent: Agent, tools: dict[str, Any]) -> None:
    started = await agent.ok("start", {"command": "python3", "args": ["build.py"]})
    ended = await agent.ok("wait", {"id": started["id"]})
    assert ended["status"] == "crashed", ended
    found = await agent.ok("get-log", {"id": started["id"], "grep": "error", "context": 2})
    assert sum("error TS2322" in line for line in found["lines"]) == 3, found


async def watcher(agent: Agent, tools: dict[str, Any], project: Path) -> None:
    started = await agent.ok("start", {"command": "python3", "args": ["watcher.py"]})
    ident = started["id"]
    await agent.ok("wait", {"id": ident, "pattern": "watching"})
    cursor = (await agent.ok("get-log", {"id": ident, "since": 0}))["nextCursor"]
    for k in (1, 2, 3):
        (project / f"trigger-{k}").touch()  # the agent edits a file
        await agent.ok("wait", {"id": ident, "pattern": f"compiled #{k} "})
        new = await agent.ok("get-log", {"id": ident, "since": cursor})
        assert any(f"compiled #{k} " in line for line in new["lines"]), new
        cursor = new["nextCursor"]


async def crash_at_start(agent: Agent, tools: dict[str, Any]) -> None:
    started = await agent.ok("start", {"command": "python3", "args": ["api.py"]})
    waited = await agent.ok("wait", {"id": started["id"], "pattern": "listening"})
    assert not waited["met"], waited
    assert any("FileNotFoundError" in line for line in waited.get("tail", [])), waited


async def prompt(agent: Agent, tools: dict[str, Any]) -> None:
    started = await agent.ok("start", {"command": "python3", "args": ["migrate.py"]})
    ident = started["id"]
    waited = await agent.ok("wait", {"id": ident, "pattern": r"\[y/N\]"})
    answerable = waited["met"]
    if answerable:
        _, failed = await agent.call("send-input", {"id": ident, "text": "y\n"})
        answerable = not failed
    if not answerable:  # stdin was /dev/null: run it again with stdin piped
        if "stdin" in tools["restart"].input_schema.get("properties", {}):
            ident = (await agent.ok("restart", {"id": ident, "stdin": "pipe"}))["id"]
        else:
            again = {"command": "python3", "args": ["migrate.py"], "stdin": "pipe"}
            ident = (await agent.ok("start", again))["id"]
        waited = await agent.ok("wait", {"id": ident, "pattern": r"\[y/N\]"})
        assert waited["met"], waited
        await agent.ok("send-input", {"id": ident, "text": "y\n"})
    ended = await agent.ok("wait", {"id": ident})
    assert ended["status"] == "exited", ended


async def end_of_session(agent: Agent, tools: dict[str, Any]) -> None:
    listed = await agent.ok("list", {})
    for process in listed["processes"]:
        if process["status"] == "running":
            await agent.ok("stop", {"id": process["id"]})
    after = await agent.ok("list", {})
    assert all(p["status"] != "running" for p in after["processes"]), after


def definition_sizes(tools: list[Any], whole: Any) -> tuple[int, int]:
    visible = [
        {
            key: value
            for key, value in {
                "name": tool.name,
                "title": tool.title,
                "description": tool.description,
                "inputSchema": tool.input_schema,
            }.items()
            if value is not None
        }
        for tool in tools
    ]
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    dumped = whole.model_dump(by_alias=True, exclude_none=True, mode="json")
    return len(json.dumps(visible, **compact).encode()), len(json.dumps(dumped, **compact).encode())


async def main(verbose: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="workflow-") as folder:
        project = Path(folder)
        for name, source in SCRIPTS.items():
            (project / name).write_text(textwrap.dedent(source))
        params = StdioServerParameters(
            command=SERVER[0], args=SERVER[1:], env=dict(os.environ), cwd=str(project)
        )
        rows = []
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            tools = {tool.name: tool for tool in listed.tools}
            visible, whole = definition_sizes(listed.tools, listed)
            agent = Agent(session)
            tasks = [
                ("dev server ready → stop", dev_server(agent, tools)),
                ("failing build → error lines", failing_build(agent, tools)),
                ("watcher → only new output, 3 times", watcher(agent, tools, project)),
                ("crash at start → why", crash_at_start(agent, tools)),
                ("prompt → answer it", prompt(agent, tools)),
                ("end of session → nothing left", end_of_session(agent, tools)),
            ]
            for name, task in tasks:
                calls, spent = agent.calls, agent.bytes
                began = time.monotonic()
                with anyio.fail_after(60):
                    await task
                rows.append(
                    [name, agent.calls - calls, agent.bytes - spent, time.monotonic() - began]
                )
            rows.append(["total", agent.calls, agent.bytes, sum(r[3] for r in rows)])
        print(f"workflow benchmark over stdio, SDK client ({machine()})")
        print(table(["task", "calls", "answer bytes", "seconds"], rows))
        print()
        print(
            table(
                ["tools/list", "bytes (compact JSON)"],
                [
                    ["model-visible (names, titles, descriptions, input schemas)", visible],
                    ["whole tools/list result", whole],
                ],
            )
        )
        if verbose:
            print("\n".join(agent.log))


if __name__ == "__main__":
    anyio.run(main, "-v" in sys.argv[1:])
