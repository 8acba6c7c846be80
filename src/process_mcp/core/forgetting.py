"""The process manager's forgetting side: ``remove``, and ended records leaving memory.

:class:`ManagerForgetting` is a base of :class:`~process_mcp.core.manager.ProcessManager`
(above :class:`~process_mcp.core.lookups.ManagerLookups`), which owns the state it changes:
a record, its log store, its run and its ownership entries go together, and the history
keeps what was recorded. Forgetting never ends a tree the record still names unless asked
(``remove`` ends what an ended process left running; leaving memory holds on to a record
whose group still lives).
"""

from __future__ import annotations

from process_mcp.core.errors import ProcessRunning
from process_mcp.core.history.recorder import Recorder
from process_mcp.core.listeners import Listeners
from process_mcp.core.lookups import ManagerLookups
from process_mcp.core.records import ProcessRecord
from process_mcp.core.retention import EndedRecords
from process_mcp.core.trees import proc, stopping


class ManagerForgetting(ManagerLookups):
    """Forgetting records (see the module docstring)."""

    ended_held: EndedRecords
    listeners: Listeners
    recorder: Recorder

    async def remove(self, process_id: str) -> ProcessRecord:
        """Forget an ended process, end what it left running, and delete its log.

        On return the id is unknown and no process of its tree runs (unless stuck in the
        kernel). Raises UnknownProcess, or ProcessRunning while it runs.
        """
        record = self.get(process_id)
        if record.running:
            raise ProcessRunning(
                f"process {process_id!r} (pid {record.pid}) is still running; "
                "call 'stop' first, then 'remove'"
            )
        run = self._runs.pop(process_id, None)
        if run is not None:
            run.release()
        await self._end_leftovers(record)  # no id would reach a daemon it left any more
        if record.pid is not None:
            self.ownership.release(record.pid)
        self.ownership.forget(process_id)
        self.ended_held.discard(process_id)
        del self._records[process_id]
        self._logs.pop(process_id).delete()
        self.recorder.removed(process_id)  # its records stay, their log marked dropped
        self.listeners.records_changed()
        return record

    def forget_due(self) -> None:
        """Ended records past their time in memory leave it (``core/retention.py``): their
        record, log store and cgroup are let go, their history stays, and their ids answer
        from it (:meth:`past`). A tree that still has a live group is held on."""
        held_on, forgot = [], False
        for process_id in self.ended_held.due():
            record = self._records.get(process_id)
            if record is None or record.running or process_id in self._runs:
                continue
            if record.pid is not None and proc.group_exists(record.pid):
                held_on.append(process_id)  # a daemon it left: stays reachable by its id
                continue
            del self._records[process_id]
            log = self._logs.pop(process_id)
            log.close()
            if not self.recorder.enabled:  # in the instance folder: no history would read it
                log.delete()
            self.ownership.forget(process_id)
            self.recorder.forgotten(process_id)
            self.listeners.forgotten(process_id)
            forgot = True
        for process_id in held_on:  # looked at again later
            self.ended_held.ended(process_id)
        if forgot:
            self.listeners.records_changed()

    async def _end_leftovers(self, record: ProcessRecord) -> list[int]:
        """After the leader ended: SIGKILL what of its tree still runs; returns survivors."""
        if record.pid is None:
            return []
        return await stopping.end_leftovers(self.ownership, record.id, record.pid)
