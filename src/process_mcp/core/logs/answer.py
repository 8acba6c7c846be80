"""The fields of a log query's answer, in one place for both sides of the supervisor hop.

Standard library only: the core's :class:`~process_mcp.core.logs.query.LogAnswer` and the
wire's :class:`~process_mcp.supervisor.protocol.documents.LogAnswerDoc` both extend
:class:`LogAnswerFields`, so the person's CLI decodes an answer without loading the
query engine, and the two classes cannot drift apart field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LogAnswerFields:
    """What a query returns; ``numbers[i]`` is the line number of ``lines[i]``, and with a
    ``grep``, ``hits[i]`` says whether that line matched (else it is context; ``hits`` is
    empty without a grep). ``first_stored``/``last_stored`` are the oldest and newest
    stored line numbers the query saw (``first_stored`` is ``last_stored + 1`` when
    nothing is stored)."""

    lines: list[str]
    numbers: list[int]
    next_cursor: int
    total_lines: int
    omitted_lines: int
    cut_in_answer: int
    pending_lines: int
    missed_lines: int
    dropped_bytes: int
    cut_lines: int
    first_stored: int
    last_stored: int
    hits: list[bool] = field(default_factory=list)
    lost_bytes: int = 0
    lost_reason: str | None = None
    redacted: int = 0  # secrets masked in ``lines`` (see ``logs/redact.py``)
