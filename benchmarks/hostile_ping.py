"""The server keeps answering while it serves hostile or huge requests.

Pings the real server (stdio, raw JSON-RPC lines, so the client's own parsing of a big
answer is not counted) every 20 ms while one of these is asked again and again:

1. ``get-log {grep: "(a+)+$"}`` on a log of 2000 lines of 36 ``a``s and a ``!``
   (catastrophic backtracking for a backtracking engine; linear with RE2);
2. ``get-log {maxBytes: 1048576, raw: true}`` on 8 MiB of binary output (a 1 MiB answer,
   built off the event loop).

Goal: ping p99 < 100 ms during both.
Run: ``uv run python benchmarks/hostile_ping.py [rounds]``
"""

from __future__ import annotations

import sys
import threading
import time

from _harness import RawServer, machine, p50_p99, table

PATHOLOGICAL = "for _ in range(2000): print('a' * 36 + '!')"
BINARY = "import os, sys\nfor _ in range(128): sys.stdout.buffer.write(os.urandom(65536))"


class Timed(RawServer):
    """Requests sent from one thread, answers timed by a reader thread by id."""

    def start_reader(self) -> None:
        self.sent: dict[int, float] = {}
        self.took: dict[int, float] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.perf_counter()
            head = line[:200].decode("utf-8", "replace")
            marker = head.find('"id":')
            if marker < 0:
                continue
            digits = "".join(ch for ch in head[marker + 5 : marker + 20] if ch.isdigit())
            with self.lock:
                if digits and int(digits) in self.sent:
                    self.took[int(digits)] = (now - self.sent[int(digits)]) * 1000

    def ask(self, method: str, params: dict) -> int:
        with self.lock:
            self._next += 1
            number = self._next
            self.sent[number] = time.perf_counter()
        self._send({"jsonrpc": "2.0", "id": number, "method": method, "params": params})
        return number


def attack(server: Timed, arguments: dict, rounds: int) -> tuple[list[float], list[float]]:
    pings, calls = [], []
    for _ in range(rounds):
        call = server.ask("tools/call", {"name": "get-log", "arguments": arguments})
        while call not in server.took:
            pings.append(server.ask("ping", {}))
            time.sleep(0.02)
        calls.append(call)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(p in server.took for p in pings):
        time.sleep(0.01)
    return [server.took.get(p, 5000.0) for p in pings], [server.took[c] for c in calls]


def main(rounds: int) -> None:
    server = Timed()
    rows = []
    try:
        attacks = []
        for name, program, extra in (
            ("grep (a+)+$ on 2000 lines", PATHOLOGICAL, {"grep": "(a+)+$"}),
            ("1 MiB raw answer of binary output", BINARY, {"maxBytes": 1048576, "raw": True}),
        ):
            started = server.call("start", {"command": sys.executable, "args": ["-c", program]})
            server.call("wait", {"id": started["id"], "timeoutSeconds": 60})
            attacks.append((name, {"id": started["id"], **extra}))
        server.start_reader()  # from here on, the reader thread owns the server's stdout
        for name, arguments in attacks:
            pings, calls = attack(server, arguments, rounds)
            ping50, ping99 = p50_p99(pings)
            rows.append([name, len(pings), ping50, ping99, max(pings), p50_p99(calls)[0]])
    finally:
        server.proc.kill()
    print(machine())
    print(table(["attack", "pings", "ping p50 ms", "p99 ms", "max ms", "call p50 ms"], rows))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
