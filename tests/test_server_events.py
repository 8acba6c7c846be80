"""The per-client exit queue behind every answer's ``events``."""

from __future__ import annotations

from process_mcp.core import ProcessRecord, Status
from process_mcp.server.events import ExitEvents


def ended(process_id: str, code: int) -> ProcessRecord:
    record = ProcessRecord(
        id=process_id, command="sh", args=[], cwd="/", env={}, notify_on_exit=False, pid=1
    )
    record.status = Status.EXITED if code == 0 else Status.CRASHED
    record.exit_code = code
    record.ended_at = "2026-11-28T10:00:00.000Z"
    return record


def test_each_client_hears_of_each_exit_once_from_its_first_request() -> None:
    events = ExitEvents()
    events.meet("a")
    events.record(ended("p1", 1))
    events.meet("b")  # b arrives after p1 ended: it is not told of p1
    events.record(ended("p2", 0))
    assert [e["id"] for e in events.take("a")] == ["p1", "p2"]
    assert events.take("a") == []
    assert events.take("b") == [
        {
            "id": "p2",
            "status": "exited",
            "exitCode": 0,
            "signal": None,
            "endedAt": "2026-11-28T10:00:00.000Z",
        }
    ]
    assert events.take("b") == []


def test_the_queue_is_bounded_keeping_the_newest() -> None:
    events = ExitEvents(keep=3)
    events.meet("a")
    for n in range(5):
        events.record(ended(f"p{n}", n))
    assert [e["id"] for e in events.take("a")] == ["p2", "p3", "p4"]
