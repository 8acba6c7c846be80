"""The process manager's read-only side: looking records up, their logs and live facts.

:class:`ManagerLookups` is a base of :class:`~process_mcp.core.manager.ProcessManager`,
which owns the state it reads (records, current runs, logs, the facts and port watches,
the tree ownership); nothing here changes it. Every lookup reads only memory.
"""

from __future__ import annotations

from process_mcp.core.errors import UnknownProcess
from process_mcp.core.facts.live import LiveFacts, TreeFacts
from process_mcp.core.facts.ports import PortWatch
from process_mcp.core.logs.store import LogStore
from process_mcp.core.records import ProcessRecord, Status
from process_mcp.core.run import Run
from process_mcp.core.trees.ownership import Ownership


class ManagerLookups:
    """Lookups over the state a :class:`ProcessManager` keeps (see the module docstring)."""

    _records: dict[str, ProcessRecord]
    _runs: dict[str, Run]  # the current run of each record still watched
    _logs: dict[str, LogStore]
    facts: LiveFacts
    ports: PortWatch
    ownership: Ownership

    def get(self, process_id: str) -> ProcessRecord:
        """The live record (mutated as the process runs). Raises UnknownProcess, naming the
        known ids."""
        try:
            return self._records[process_id]
        except KeyError:
            raise UnknownProcess(process_id, list(self._records)) from None

    def find(self, process_id: str) -> ProcessRecord | None:
        """The record, or None for an unknown id; never raises."""
        return self._records.get(process_id)

    def records(self) -> list[ProcessRecord]:
        """Every record, running or ended, in start order (a new list)."""
        return list(self._records.values())

    def summaries(self) -> list[dict[str, object]]:
        """One line of facts per record, in start order (see ``ProcessRecord.summary``),
        with the listening ports the background port watch last saw (at most about a
        second old). Reads only memory: no ``/proc`` read per process."""
        runs, ports, running = self._runs, self.ports.table(), Status.RUNNING
        return [
            record.summary(
                list(ports.get(run.pgid, ()))
                if record.status is running and (run := runs.get(record.id)) is not None
                else []
            )
            for record in self._records.values()
        ]

    def labelled(self, label: str) -> ProcessRecord | None:
        """The running process that has ``label``, if any (labels are unique among them)."""
        for record in self._records.values():
            if record.running and record.options.label == label:
                return record
        return None

    def log(self, process_id: str) -> LogStore:
        """The process's log store, for counters and snapshots; read lines with
        :meth:`read_log`. Raises UnknownProcess."""
        self.get(process_id)
        return self._logs[process_id]

    @property
    def containment(self) -> str:
        """How every tree of this server is held: ``"cgroup"`` or ``"group"``."""
        return self.ownership.containment

    def tree_pids(self, process_id: str) -> list[int]:
        """Live pids of the process's whole tree (group, marked escapees, descendants)."""
        record = self.find(process_id)  # removed meanwhile by a concurrent call: nothing left
        if record is None or record.pid is None:
            return []
        run = self._runs.get(process_id)
        leader_unreaped = run is not None and run.exit_status is None
        return self.ownership.tree_pids(process_id, record.pid, leader_unreaped)

    def live_facts(self, process_id: str) -> dict[str, object] | None:
        """CPU, memory, processes, ports, idle time and log size; None once it has ended."""
        record = self.get(process_id)
        facts = self._tree_facts(process_id)
        if facts is None:
            return None
        return facts.describe(record.last_output_at, self._logs[process_id].size)

    def listening_ports(self, process_id: str) -> list[int]:
        """TCP ports its tree listens on (empty once it has ended); at most 1 s old."""
        facts = self._tree_facts(process_id)
        return [] if facts is None else facts.listening_ports

    def _tree_facts(self, process_id: str) -> TreeFacts | None:
        """The running tree's sampled facts; None once the process has ended."""
        run = self._runs.get(process_id)
        if not self.get(process_id).running or run is None:
            return None
        return self.facts.tree_facts(run.pgid)
