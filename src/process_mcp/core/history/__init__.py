"""Memory across supervisor restarts: every run's record and log (SPEC §11).

Stdlib ``sqlite3`` only, no MCP import. See :mod:`.store` for the guarantees.
"""

from process_mcp.core.history.logread import snapshot_from_disk
from process_mcp.core.history.schema import MIGRATIONS, SCHEMA_VERSION
from process_mcp.core.history.store import (
    DB_NAME,
    RUNS_DIR,
    History,
    HistoryError,
    LogFacts,
    Run,
)

__all__ = [
    "DB_NAME",
    "MIGRATIONS",
    "RUNS_DIR",
    "SCHEMA_VERSION",
    "History",
    "HistoryError",
    "LogFacts",
    "Run",
    "snapshot_from_disk",
]
