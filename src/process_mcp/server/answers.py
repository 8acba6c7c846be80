"""Every answer's shape, in one place: what the core hands out becomes the slim JSON an
agent reads (the agent pays for every byte).

The rule: a field at its default — as the output model in ``schemas.py``
declares it — is left out; a required field is always there; ``exitCode`` and ``signal``
are always there once the process has ended (``null`` when not the way it ended). So an
output schema's ``required`` is exactly what every answer carries.

A grep answer reads like ``grep -n -C``: each line prefixed with its number and ``:`` (a
match) or ``-`` (context), groups of context separated by a ``--`` line.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from process_mcp.core import ProcessRecord, Status, StopResult
from process_mcp.core.history import PastRun
from process_mcp.core.logs.query import LogAnswer
from process_mcp.core.records import END_STATUSES
from process_mcp.core.spawn.stdin import InputReceipt
from process_mcp.core.waiting import ExitsOutcome, WaitOutcome
from process_mcp.server import schemas as s
from process_mcp.supervisor.remote import PastView

ENDED = frozenset({*END_STATUSES, Status.INTERRUPTED.value})  # a past run's too
EXIT_FIELDS = ("exitCode", "signal")


class Shape:
    """Slims dicts to one output model: drops each optional field at its default, keeps
    required ones, and keeps ``exitCode``/``signal`` once the status says it ended."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.defaults: dict[str, Any] = {}
        for name, field in model.model_fields.items():
            if not field.is_required():
                self.defaults[field.alias or name] = field.get_default(call_default_factory=True)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        defaults = self.defaults
        ended = data.get("status") in ENDED
        return {
            key: value
            for key, value in data.items()
            if key not in defaults
            or value != defaults[key]
            or type(value) is not type(defaults[key])  # 0 is not False, 0.0 is not None
            or (ended and key in EXIT_FIELDS)
        }


_started = Shape(s.StartResult)
_stopped = Shape(s.StopResult)
_status = Shape(s.StatusResult)
_log = Shape(s.LogResult)
_listed = Shape(s.ListedProcess)
_pid = Shape(s.PidResult)
_removed = Shape(s.RemoveResult)
_input = Shape(s.InputResult)
_signalled = Shape(s.SignalResult)
_waited = Shape(s.WaitResult)
_ended = Shape(s.EndedProcess)


def _options(record: ProcessRecord) -> dict[str, Any]:
    options = record.options
    return {
        "notifyOnExit": record.notify_on_exit,
        "label": options.label,
        "shell": options.shell,
        "stdin": options.stdin,
        "pty": options.pty,
        "timeoutSeconds": options.timeout_seconds,
    }


def _basics(record: ProcessRecord) -> dict[str, Any]:
    return {"id": record.id, "pid": record.pid, "status": record.status.value}


def _exit(record: ProcessRecord) -> dict[str, Any]:
    return {"exitCode": record.exit_code, "signal": record.signal}


def started(record: ProcessRecord, reused: bool = False, history: bool = False) -> dict[str, Any]:
    """``start``/``restart``: the seed's fields and the options that differ from the
    defaults (plus ``restarts``, ``reused``; with ``history``, ``start``'s earlier runs)."""
    return _started(
        {
            **_basics(record),
            "command": record.command,
            "args": list(record.args),
            "cwd": record.cwd,
            **_exit(record),
            **_options(record),
            "restarts": record.restarts,
            "reused": reused,
            "history": record.history if history else None,
        }
    )


def stopped(result: StopResult) -> dict[str, Any]:
    """``stop``: the seed's ``{id, pid, status, exitCode, signal}`` and ``treeGone``."""
    record = result.record
    return _stopped(
        {
            **_basics(record),
            **_exit(record),
            "timedOut": record.timed_out,
            "reason": record.reason,
            "treeGone": result.tree_gone,
            "survivors": result.survivors,
        }
    )


def status(
    process_id: str, record: ProcessRecord | None, facts: dict[str, Any] | None
) -> dict[str, Any]:
    """``get-status``: ``{id, status: "not-exists"}`` for an unknown id; else the record
    and, while it runs, its live facts (each left out at zero)."""
    if record is None:
        return {"id": process_id, "status": "not-exists"}
    return _status(
        {
            **_basics(record),
            "command": record.command,
            "args": list(record.args),
            "cwd": record.cwd,
            **_exit(record),
            "startedAt": record.started_at,
            "endedAt": record.ended_at,
            **_options(record),
            "timedOut": record.timed_out,
            "reason": record.reason,
            "restarts": record.restarts,
            **(facts or {}),
        }
    )


def past(run: PastRun | PastView) -> dict[str, Any]:
    """``get-status`` of a process an earlier server ran: its final record, from history."""
    facts = run.public()
    return _status({key: facts.get(key) for key in _PAST_FIELDS if key in facts})


_PAST_FIELDS = ("id", "pid", "status", "command", "args", "cwd", "exitCode", "signal")
_PAST_FIELDS += ("startedAt", "endedAt", "label")


def log(
    record: ProcessRecord | PastRun | PastView,
    answer: LogAnswer,
    notice: str | None,
    context: int | None,
) -> dict[str, Any]:
    """``get-log``: the lines (in ``grep -n -C`` form when ``context`` is given: the query
    had a grep with that many context lines) and what was left out."""
    lines = answer.lines if context is None else grep_listing(answer, context > 0)
    return _log(
        {
            "id": getattr(record, "process_id", record.id),  # a past run: its process id
            "status": str(record.status),
            "lines": lines,
            "nextCursor": answer.next_cursor,
            "firstLine": answer.numbers[0] if answer.numbers else None,
            "lastLine": answer.numbers[-1] if answer.numbers else None,
            "totalLines": answer.total_lines,
            "truncated": answer.truncated,
            "omittedLines": answer.omitted_lines,
            "droppedBytes": answer.dropped_bytes,
            "cutLines": answer.cut_lines,
            "pendingLines": answer.pending_lines,
            "missedLines": answer.missed_lines,
            "lostBytes": answer.lost_bytes,
            "redacted": answer.redacted,
            "notice": notice,
        }
    )


def grep_listing(answer: LogAnswer, separate: bool) -> list[str]:
    """``N:text`` for a matching line, ``N-text`` for context, and (``separate``: there is
    context) ``--`` between lines that do not follow each other, as ``grep -n -C`` prints."""
    out: list[str] = []
    context = separate
    previous: int | None = None
    for number, text, hit in zip(answer.numbers, answer.lines, answer.hits, strict=True):
        if context and previous is not None and number != previous + 1:
            out.append("--")
        out.append(f"{number}{':' if hit else '-'}{text}")
        previous = number
    return out


def listed(
    summaries: list[dict[str, Any]], older_ended: int = 0, omitted: int = 0
) -> dict[str, Any]:
    """``list``: one slim line of facts per process (``ProcessManager.summaries``), then
    how many ended ones in scope were left out (``olderEnded``) and how many entries did
    not fit the answer (``omitted``), each left out at 0.

    Built by hand rather than by ``Shape``, for speed (300 processes must answer in a few
    milliseconds); ``listed_item`` gives the same result as ``Shape(ListedProcess)``."""
    answer: dict[str, Any] = {"processes": [listed_item(summary) for summary in summaries]}
    if older_ended:
        answer["olderEnded"] = older_ended
    if omitted:
        answer["omitted"] = omitted
    return answer


def listed_item(summary: dict[str, Any]) -> dict[str, Any]:
    """``Shape(ListedProcess)(summary)``, written out."""
    status = summary["status"]
    item = {"id": summary["id"], "pid": summary["pid"], "status": status}
    if summary["label"] is not None:
        item["label"] = summary["label"]
    item["command"] = summary["command"]
    if status in ENDED:
        item["exitCode"] = summary["exitCode"]
        item["signal"] = summary["signal"]
    item["startedAt"] = summary["startedAt"]
    if summary["listeningPorts"]:
        item["listeningPorts"] = summary["listeningPorts"]
    owner = summary.get("owner")  # the supervisor's list says whose each process is
    if owner is not None:
        item["owner"] = owner
    if summary.get("commandCut"):
        item["commandCut"] = True
    return item


def pid(process_id: str, record: ProcessRecord | None) -> dict[str, Any]:
    if record is None:
        return {
            "id": process_id,
            "pid": None,
            "notice": f"no process with id {process_id!r}, so pid is null; call 'list' to see "
            "the ids",
        }
    return _pid({"id": process_id, "pid": record.pid})


def removed(record: ProcessRecord) -> dict[str, Any]:
    return _removed({**_basics(record), **_exit(record), "removed": True})


def input_taken(record: ProcessRecord, receipt: InputReceipt) -> dict[str, Any]:
    return _input(
        {
            "id": record.id,
            "status": record.status.value,
            "bytesWritten": receipt.bytes_written,
            "bytesPending": receipt.bytes_pending,
            "stdinOpen": receipt.stdin_open,
        }
    )


def signalled(record: ProcessRecord, sent: str) -> dict[str, Any]:
    return _signalled({**_basics(record), **_exit(record), "sent": sent})


def waited(outcome: WaitOutcome) -> dict[str, Any]:
    """``wait`` on one process: met/reason, where the log is (``nextCursor``), the matched
    line, how it ended, and the tail asked for."""
    record = outcome.record
    return _waited(
        {
            "id": record.id,
            "status": record.status.value,
            "met": outcome.met,
            "reason": outcome.reason,
            "matchedLine": outcome.matched_line,
            "matchedLineNumber": outcome.matched_line_number,
            **_exit(record),
            "elapsedSeconds": outcome.elapsed,
            "nextCursor": outcome.cursor,
            "tail": outcome.tail,
            "redacted": outcome.redacted,
        }
    )


def waited_for_exits(outcome: ExitsOutcome, tails: dict[str, list[str]]) -> dict[str, Any]:
    """``wait`` on several processes: which ended (how, with the tails asked for) and
    which still run."""
    return _waited(
        {
            "met": outcome.met,
            "reason": outcome.reason,
            "elapsedSeconds": outcome.elapsed,
            "ended": [
                _ended(
                    {
                        "id": record.id,
                        "status": record.status.value,
                        **_exit(record),
                        "tail": tails.get(record.id, []),
                    }
                )
                for record in outcome.ended
            ],
            "running": [record.id for record in outcome.running],
            "redacted": outcome.redacted,
        }
    )


def reported_exits(answer: dict[str, Any]) -> set[str]:
    """Ids whose end this answer itself shows, so ``events`` need not repeat them."""
    ids = {ended["id"] for ended in answer.get("ended", ())}
    if answer.get("status") in ENDED and "id" in answer:
        ids.add(answer["id"])
    return ids
