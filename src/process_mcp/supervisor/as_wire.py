"""The core's objects as the protocol's documents, and the folder a request names: what
the service's ops and the modules it delegates to (``waits.py``) answer with."""

from __future__ import annotations

import os
from typing import Any

from process_mcp.core import ProcessRecord
from process_mcp.core.history import PastRun
from process_mcp.supervisor.protocol import RequestError
from process_mcp.supervisor.protocol.documents import FactsDoc, PastDoc, RecordDoc


def resolve_folder(folder: str | None) -> str:
    """The front-end's default folder, absolute and with symbolic links resolved (records'
    cwds are stored resolved). Raises RequestError for anything but an absolute path."""
    if not isinstance(folder, str) or not os.path.isabs(folder):
        raise RequestError(
            "bad_request",
            f"'folder' must be an absolute path, got {folder!r}: send the "
            "front-end's default folder",
        )
    return os.path.realpath(folder)


def record_doc(record: ProcessRecord) -> RecordDoc:
    return RecordDoc.from_public(record.public())


def facts_doc(facts: dict[str, Any] | None) -> FactsDoc | None:
    return None if facts is None else FactsDoc.from_public(facts)


def past_doc(run: PastRun) -> PastDoc:
    """An earlier run as a front-end needs it: ``run.public()`` plus the bytes of its log
    deleted (``log_dropped_bytes``, None while the log is kept)."""
    return PastDoc.from_public({**run.public(), "logDroppedBytes": run.log_dropped_bytes})
