"""Memory across supervisor restarts: every run's record and log.

Stdlib ``sqlite3`` only, no MCP import. Modules: :mod:`.store` (the runs, and the
guarantees), :mod:`.database` (opening, read-only and disabled modes), :mod:`.rows`
(:class:`PastRun`), :mod:`.pruning` (deleting log folders), :mod:`.schema` (migrations),
:mod:`.recorder` (the manager's link).
"""

from process_mcp.core.history.database import DB_NAME, HistoryError
from process_mcp.core.history.logread import snapshot_from_disk
from process_mcp.core.history.rows import ENDED, LogFacts, PastRun
from process_mcp.core.history.schema import MIGRATIONS, SCHEMA_VERSION
from process_mcp.core.history.store import RUNS_DIR, History

__all__ = [
    "DB_NAME",
    "ENDED",
    "MIGRATIONS",
    "RUNS_DIR",
    "SCHEMA_VERSION",
    "History",
    "HistoryError",
    "LogFacts",
    "PastRun",
    "snapshot_from_disk",
]
