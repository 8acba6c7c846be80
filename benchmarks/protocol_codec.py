"""The supervisor protocol's codec on its biggest message, ``list``: the supervisor building
and encoding the reply for N records (typed documents), the front-end decoding it, and
for comparison the plain-dict encoding (what protocol 1 did: public records merged with
the list's fields, no types). Median of ``rounds`` runs, milliseconds.

Run: ``uv run python benchmarks/protocol_codec.py [records] [rounds]``
"""

from __future__ import annotations

import statistics
import sys
import time

from _harness import machine, table

from process_mcp.core.records import ProcessRecord
from process_mcp.supervisor.protocol import Response, decode, encode, ops, to_wire
from process_mcp.supervisor.protocol.documents import Listed, RecordDoc


def timed(work, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        work()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def main(count: int, rounds: int) -> None:
    records = [
        ProcessRecord(f"p{i:05d}", "sleep", ["600"], "/srv/app", {}, False, pid=1000 + i)
        for i in range(count)
    ]

    def typed() -> bytes:
        processes = [
            Listed(RecordDoc.from_public(r.public()), [], "self", r.command_line()) for r in records
        ]
        return encode(to_wire(Response(1, ops.encode_reply(ops.ListReply(processes)))))

    def plain() -> bytes:
        processes = [
            {**r.public(), "listeningPorts": [], "owner": "self", "commandLine": r.command_line()}
            for r in records
        ]
        return encode(to_wire(Response(1, {"processes": processes})))

    line = typed()
    rows = [
        ["supervisor: build + encode (typed)", count, f"{timed(typed, rounds):.1f}"],
        ["supervisor: build + encode (plain dicts)", count, f"{timed(plain, rounds):.1f}"],
        [
            "front-end: decode (typed, shape checked)",
            count,
            f"{timed(lambda: ops.decode_reply('list', decode(line).ok), rounds):.1f}",
        ],
        ["front-end: json.loads only", count, f"{timed(lambda: decode(line), rounds):.1f}"],
    ]
    print(machine())
    print(table(["step", "records", "median ms"], rows))
    print(f"message: {len(line)} bytes")


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 20,
    )
