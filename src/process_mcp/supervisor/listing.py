"""What the ``list`` op answers: bounded, whatever the records hold and however long the
supervisor has lived.

* Every running process in scope, and at most ``ended`` (default ``DEFAULT_ENDED``, at most
  ``MAX_ENDED``) of the ended ones, newest end first; ``olderEnded`` counts the ended ones
  in scope the supervisor still holds that were left out (absent at 0). Ended processes of
  other sessions that ended over ``OTHERS_ENDED_SECONDS`` ago are left out unless ``ended``
  is given. When ``ended`` asks for more than memory holds, the history fills in (ids that
  already left memory, or ran under an earlier supervisor), newest first.
* Entries are slim (``id, pid, status, label, commandLine, cwd, startedAt``, the end once
  ended, ``listeningPorts`` when any, ``owner``; no ``args``): ``commandLine`` (the
  command as typed, with its args) is cut to ``command_chars`` characters (default
  ``COMMAND_LINE_CHARS``, at most ``MAX_COMMAND_CHARS``) and ``cwd`` to ``CWD_CHARS``, each
  cut one with ``commandCut``/``cwdCut: true``. A 1 MiB argument list costs a list line,
  not a megabyte.
* The whole answer stays under ``ANSWER_BUDGET`` bytes as JSON (well below the wire's
  message limit): past it, entries are left out and ``omitted`` says how many.

Reads only memory for what the supervisor holds (ports from the manager's background port
watch), so a few hundred processes answer in milliseconds.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from process_mcp.core.limits import MAX_LABEL_CHARS
from process_mcp.core.records import COMMAND_LINE_CHARS, ProcessRecord
from process_mcp.supervisor.protocol import ops as op
from process_mcp.supervisor.protocol.documents import FactsDoc, Listed, wire_size

if TYPE_CHECKING:
    from process_mcp.core import ProcessManager
    from process_mcp.core.history import PastRun

DEFAULT_ENDED = 10
MAX_ENDED = 1000
OTHERS_ENDED_SECONDS = 3600.0
MAX_COMMAND_CHARS = 2000  # the protocol's bound on command_chars
CWD_CHARS = 300
# 4 MiB: room left under the wire's 8 MiB for the ends the answer carries (service.py)
ANSWER_BUDGET = 4 * 1024 * 1024
_ENTRY_OVERHEAD = 400  # the fixed fields of an entry, as JSON, at most (facts included)


def cut(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters with a trailing ``…``, and whether it was."""
    if len(text) <= limit:
        return text, False
    return text[: limit - 1] + "…", True


def under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both absolute, normalised)."""
    if folder == os.sep:
        return True
    return path == folder or path.startswith(folder + os.sep)


def record_entry(record: ProcessRecord, chars: int, owner: Any, ports: list[int]) -> Listed:
    """The record's list line (slim: see the module docstring)."""
    line = record.command_line() if chars == COMMAND_LINE_CHARS else record.command_line(chars)
    cwd, cwd_cut = cut(record.cwd, CWD_CHARS)
    running = record.running
    return Listed(
        record.id,
        record.pid,
        record.status.value,
        line,
        cwd,
        record.started_at,
        owner,
        record.options.label,
        None if running else record.exit_code,
        None if running else record.signal,
        record.ended_at,
        ports,
        len(line) == chars and line.endswith("…"),
        cwd_cut,
    )


def past_entry(run: PastRun, chars: int) -> Listed:
    """An ended run the history holds, as a list line (no session owns it any more)."""
    line, line_cut = cut(shlex.join([run.command, *run.args]), chars)
    cwd, cwd_cut = cut(run.cwd, CWD_CHARS)
    return Listed(
        run.process_id,
        None,
        run.status,
        line,
        cwd,
        run.started_at,
        "other",
        run.label,
        run.exit_code,
        run.signal,
        run.ended_at,
        [],
        line_cut,
        cwd_cut,
    )


def entry_size(entry: Listed) -> int:
    """An upper bound of the line's size as JSON."""
    texts = (entry.command_line, entry.cwd, entry.label or "")
    return _ENTRY_OVERHEAD + sum(wire_size(text) for text in texts)


async def build(
    manager: ProcessManager,
    request: op.ListProcesses,
    folder: str | None,
    owner_of: Callable[[str], str],
) -> op.ListReply:
    """The ``list`` answer (module docstring) for ``folder`` (None: every folder), each
    line with ``owner`` from ``owner_of(process_id)``."""
    asked = request.ended
    wanted = DEFAULT_ENDED if asked is None else asked
    chars = request.command_chars or COMMAND_LINE_CHARS
    ages = manager.ended_held
    in_scope: list[ProcessRecord] = []  # in start order
    ended: list[ProcessRecord] = []
    for record in manager.records():
        if folder is not None and not under(record.cwd, folder):
            continue
        if not record.running:
            if asked is None and owner_of(record.id) == "other":
                age = ages.age(record.id)
                if age is not None and age >= OTHERS_ENDED_SECONDS:
                    continue
            ended.append(record)
        in_scope.append(record)
    ended.sort(key=lambda record: record.ended_at or "", reverse=True)
    keep = {record.id for record in ended[:wanted]}
    older = max(len(ended) - wanted, 0)
    shown = [record for record in in_scope if record.running or record.id in keep]
    lines = _entries(manager, shown, chars, owner_of, request.facts)
    if asked and len(keep) < wanted:  # asked for more than memory holds: the history's
        held = {record.id for record in manager.records()}
        runs = await manager.recorder.ended_under(folder, wanted - len(keep) + len(held))
        extra = [run for run in runs if run.process_id not in held][: wanted - len(keep)]
        lines[:0] = [past_entry(run, chars) for run in reversed(extra)]
    return op.ListReply(lines, older_ended=older, omitted=_fit(lines, chars))


def _entries(
    manager: ProcessManager,
    records: list[ProcessRecord],
    chars: int,
    owner_of: Callable[[str], str],
    facts: bool,
) -> list[Listed]:
    ports = manager.ports.table()
    lines = []
    for record in records:
        running = record.running
        listening = list(ports.get(record.pid or 0, ())) if running else []
        line = record_entry(record, chars, owner_of(record.id), listening)
        if facts and running:  # the person's ps and top
            found = manager.live_facts(record.id)
            line.facts = None if found is None else FactsDoc.from_public(found)
        lines.append(line)
    return lines


def _fit(lines: list[Listed], chars: int) -> int:
    """Leave out the newest lines past ``ANSWER_BUDGET``; how many were left out."""
    largest = _ENTRY_OVERHEAD + 12 * (chars + CWD_CHARS + MAX_LABEL_CHARS) + 6
    if len(lines) * largest <= ANSWER_BUDGET:  # fits whatever they hold: no count
        return 0
    total = 0
    for index, line in enumerate(lines):
        total += entry_size(line)
        if total > ANSWER_BUDGET:
            omitted = len(lines) - index
            del lines[index:]
            return omitted
    return 0
