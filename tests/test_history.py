"""The history database: records and logs that outlive the supervisor."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from process_mcp.core.history import (
    SCHEMA_VERSION,
    History,
    HistoryError,
    LogFacts,
    PastRun,
)
from process_mcp.core.history.schema import MIGRATIONS, migrate, user_version
from process_mcp.core.logs.query import LogQuery, run_query
from process_mcp.core.logs.store import LogStore

SUP = "1234-abcd"


def start(history: History, process_id: str = "abc123", **overrides: object) -> PastRun:
    fields: dict = {
        "command": "npm",
        "args": ["test"],
        "cwd": "/project",
        "label": None,
        "supervisor": SUP,
    }
    fields.update(overrides)
    run = history.record_start(process_id, **fields)
    assert run is not None
    return run


def write_log(run: PastRun, size: int) -> int:
    """A log store's files for ``run`` holding about ``size`` bytes; returns the exact size."""
    assert run.log_dir is not None
    store = LogStore(run.log_dir, max_bytes=1 << 30, max_line_bytes=1 << 16)
    store.append("stdout", b"x" * (size - 2) + b"\n")
    store.close()
    return store.size


def end(history: History, run: PastRun, status: str = "exited", **overrides: object) -> None:
    fields: dict = {"exit_code": 0 if status == "exited" else None, "signal": None}
    fields.update(overrides)
    history.record_end(run.id, status=status, **fields)


def assert_kept_total(history: History) -> None:
    """The trigger-kept total the cap reads equals the sum it stands for."""
    with sqlite3.connect(history.path) as conn:
        (kept,) = conn.execute("SELECT kept_bytes FROM totals").fetchone()
        (real,) = conn.execute(
            "SELECT COALESCE(SUM(bytes), 0) FROM logs"
            " WHERE dropped_at IS NULL AND ended_at IS NOT NULL"
        ).fetchone()
    conn.close()
    assert kept == real


@pytest.fixture
def history(tmp_path: Path):
    with History.in_state_dir(tmp_path / "state") as opened:
        yield opened


def test_round_trip_of_a_run(history: History, tmp_path: Path) -> None:
    run = start(history, label="tests", started_at="2030-01-01T00:00:00.000Z")
    assert (run.status, run.run, run.label, run.args) == ("running", 1, "tests", ("test",))
    assert run.log_dir is not None and run.log_dir.parent == tmp_path / "state" / "runs"
    assert not run.log_dir.exists()  # the log store makes it on first output
    size = write_log(run, 1000)
    end(history, run, "crashed", exit_code=3, ended_at="2030-01-01T00:00:02.500Z")

    got = history.get(run.id)
    assert got is not None
    assert (got.status, got.exit_code, got.signal) == ("crashed", 3, None)
    assert got.ended_at == "2030-01-01T00:00:02.500Z"
    assert got.duration == pytest.approx(2.5)
    assert got.log_bytes == size  # measured on disk when no LogFacts are given
    assert history.find("abc123") == got
    assert history.runs() == [got]
    public = got.public()
    assert public["seconds"] == 2.5 and public["id"] == "abc123" and public["run"] == 1
    assert "logDroppedBytes" not in public
    with pytest.raises(ValueError, match="not an end"):
        history.record_end(run.id, status="running", exit_code=None, signal=None)


def test_records_and_logs_survive_reopening(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with History.in_state_dir(state) as history:
        run = start(history)
        assert run.log_dir is not None
        # A small per-process cap trims the oldest lines, so numbering must be kept.
        store = LogStore(run.log_dir, max_bytes=8 * 1024, max_line_bytes=1024)
        for i in range(2000):
            store.append("stdout" if i % 3 else "stderr", f"line {i}\n".encode())
        store.note("process exited with code 0")
        store.close()
        assert store.first_line > 1
        live = run_query(store.snapshot(), LogQuery(last_lines=50))
        live_grep = run_query(store.snapshot(), LogQuery(grep="line 19[0-9]{2}$", stream="stderr"))
        end(history, run, log=LogFacts.of(store))

    with History.in_state_dir(state) as reopened:  # a new supervisor, same state dir
        found = reopened.find("abc123")
        assert found is not None and found.status == "exited"
        assert found.log_bytes == store.size
        snapshot = reopened.log_snapshot(found)
        assert snapshot is not None
        assert (snapshot.first_line, snapshot.last_line) == (store.first_line, store.last_line)
        again = run_query(snapshot, LogQuery(last_lines=50))
        assert (again.lines, again.numbers) == (live.lines, live.numbers)
        again_grep = run_query(snapshot, LogQuery(grep="line 19[0-9]{2}$", stream="stderr"))
        assert (again_grep.lines, again_grep.numbers) == (live_grep.lines, live_grep.numbers)
        assert again.dropped_bytes == store.dropped_bytes
        since = run_query(snapshot, LogQuery(since=store.first_line - 1, limit=3))
        assert since.numbers == [store.first_line, store.first_line + 1, store.first_line + 2]
        assert since.missed_lines == 0


def test_restarts_number_runs_and_may_share_a_log(history: History) -> None:
    first = start(history)
    write_log(first, 4096)
    end(history, first, "stopped", signal="SIGTERM")
    second = start(history, share_log_of=first.id)
    third = start(history)
    other_supervisor = start(history, supervisor="999-ffff")
    assert (first.run, second.run, third.run, other_supervisor.run) == (1, 2, 3, 1)
    assert second.log_dir == first.log_dir
    assert third.log_dir != first.log_dir
    assert history.find("abc123") == other_supervisor
    # The shared log is running again: even a cap of 0 keeps it.
    assert_kept_total(history)
    assert history.enforce_cap(0) == []
    assert first.log_dir is not None and first.log_dir.exists()
    # Once the cap dropped a log, sharing it starts a new folder instead.
    end(history, second, "exited")
    end(history, third, "exited")
    end(history, other_supervisor, "exited")
    assert second.id in [run.id for run in history.enforce_cap(0)]
    fourth = start(history, share_log_of=second.id)
    assert fourth.log_dir not in (None, first.log_dir) and not fourth.log_dropped
    assert_kept_total(history)


def test_stats_count_failures_and_median_of_the_same_command_and_folder(
    history: History,
) -> None:
    assert history.stats("npm", ["test"], "/project") is None
    for seconds, status in [(1, "exited"), (2, "crashed"), (10, "exited"), (4, "crashed")]:
        run = start(history, started_at="2030-01-01T00:00:00.000Z")
        end(history, run, status, ended_at=f"2030-01-01T00:00:{seconds:02d}.000Z")
    running = start(history)
    start(history, cwd="/elsewhere")  # another folder
    start(history, args=["run", "dev"])  # other arguments
    start(history, command="npm test", args=[])  # a shell line is another command

    stats = history.stats("npm", ["test"], "/project")
    assert stats == {"runs": 5, "failures": 2, "medianSeconds": 3.0}
    assert history.stats("npm", ["test"], "/project", exclude=running.id) == {
        "runs": 4,
        "failures": 2,
        "medianSeconds": 3.0,
    }
    only_running = history.stats("npm", ["test"], "/elsewhere")
    assert only_running == {"runs": 1, "failures": 0, "medianSeconds": None}


def test_cap_drops_oldest_ended_logs_first_and_keeps_records(history: History) -> None:
    runs, sizes = [], []
    for i in range(4):
        run = start(history, f"p{i}")
        sizes.append(write_log(run, 10_000))
        runs.append(run)
    # End order, not start order, decides: p2 ended first, then p0, then p1.
    for i, when in [(2, "01"), (0, "02"), (1, "03")]:
        end(history, runs[i], ended_at=f"2030-01-01T00:00:{when}.000Z")
    live = runs[3]  # still running

    assert_kept_total(history)
    assert history.enforce_cap(10**9) == []  # everything fits: nothing touched
    dropped = history.enforce_cap(cap_bytes=sizes[3] + sizes[1] + 10, live_bytes=sizes[3])
    assert [run.process_id for run in dropped] == ["p0", "p2"]
    assert all(run.log_dropped_bytes == sizes[0] for run in dropped)
    for i in (0, 2):
        kept = history.find(f"p{i}")
        assert kept is not None and kept.status == "exited"  # the record stays
        assert kept.log_dropped and kept.log_bytes == 0
        assert kept.public()["logDroppedBytes"] == sizes[i]
        assert runs[i].log_dir is not None and not runs[i].log_dir.exists()
        assert history.log_snapshot(kept) is None
    assert runs[1].log_dir is not None and runs[1].log_dir.exists()

    # Even a cap of 0 never drops the log of a running run.
    assert [run.process_id for run in history.enforce_cap(0, live_bytes=sizes[3])] == ["p1"]
    assert live.log_dir is not None and live.log_dir.exists()
    assert history.enforce_cap(0) == []
    assert_kept_total(history)
    end(history, live)
    assert_kept_total(history)
    assert [run.process_id for run in history.enforce_cap(0)] == ["p3"]
    assert_kept_total(history)


def test_cap_redrops_a_log_whose_folder_vanished(history: History) -> None:
    run = start(history)
    write_log(run, 5000)
    end(history, run)
    assert run.log_dir is not None
    for path in run.log_dir.iterdir():  # as if a crash hit between delete and commit
        path.unlink()
    run.log_dir.rmdir()
    dropped = history.enforce_cap(100)
    assert [r.id for r in dropped] == [run.id]


def test_runs_of_a_dead_supervisor_become_interrupted(history: History) -> None:
    dead = start(history, "dead01", supervisor="111-dead")
    size = write_log(dead, 3000)
    alive = start(history, "live01", supervisor="222-live")
    assert sorted(history.running_supervisors()) == ["111-dead", "222-live"]

    marked = history.mark_interrupted("111-dead")
    assert [run.process_id for run in marked] == ["dead01"]
    assert marked[0].status == "interrupted" and marked[0].log_bytes == size
    assert history.running_supervisors() == ["222-live"]
    got = history.get(alive.id)
    assert got is not None and got.status == "running"
    # Its log is now an ended run's log: the cap may drop it.
    assert_kept_total(history)
    assert [run.id for run in history.enforce_cap(0)] == [dead.id]
    stats = history.stats("npm", ["test"], "/project")
    assert stats == {"runs": 2, "failures": 0, "medianSeconds": None}


def test_runs_filter_by_label_or_command(history: History) -> None:
    web = start(history, "w1", command="npm", args=["run", "dev"], label="web")
    tests = start(history, "t1", command="uv", args=["run", "pytest"], label="tests")
    shell = start(history, "s1", command="make build && ./serve 50%_done", args=[])
    assert [run.id for run in history.runs("web")] == [web.id]
    assert [run.id for run in history.runs("uv")] == [tests.id]
    assert [run.id for run in history.runs("make build")] == [shell.id]
    assert [run.id for run in history.runs("50%_")] == [shell.id]  # LIKE wildcards are literal
    assert history.runs("0%x") == []
    assert [run.id for run in history.runs(limit=2)] == [shell.id, tests.id]


def test_migration_from_version_0_and_step_by_step(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE unrelated (x)")  # a version-0 file with something in it
    assert user_version(conn) == 0
    conn.close()

    with History(path) as history:
        start(history)
    conn = sqlite3.connect(path, isolation_level=None)
    assert user_version(conn) == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    # A later release appends a step: data is kept, the version moves on.
    extra = (*MIGRATIONS, ("ALTER TABLE runs ADD COLUMN note TEXT", "UPDATE runs SET note = 'x'"))
    assert migrate(conn, extra) == SCHEMA_VERSION
    assert user_version(conn) == SCHEMA_VERSION + 1
    assert conn.execute("SELECT process_id, note FROM runs").fetchall() == [("abc123", "x")]

    # A failing step leaves the file as it was: no half-applied migration.
    broken = (*extra, ("CREATE TABLE more (y)", "THIS IS NOT SQL"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert user_version(conn) == SCHEMA_VERSION + 1
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "more" not in tables and "unrelated" in tables
    conn.close()


def test_a_newer_database_is_refused_and_history_can_be_disabled(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    conn = sqlite3.connect(state / "history.sqlite3", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(HistoryError, match="newer process-mcp") as caught:
        History.in_state_dir(state)
    assert str(state / "history.sqlite3") in str(caught.value)

    disabled = History.open_or_disabled(state)
    assert not disabled.enabled and "newer" in (disabled.problem or "")
    assert (
        disabled.record_start("x", command="c", args=[], cwd="/", label=None, supervisor="s")
        is None
    )
    disabled.record_end(1, status="exited", exit_code=0, signal=None)
    assert disabled.stats("c", [], "/") is None
    assert disabled.runs() == [] and disabled.find("x") is None
    assert disabled.enforce_cap(0) == [] and disabled.mark_interrupted("s") == []
    # The refused file was not touched.
    conn = sqlite3.connect(state / "history.sqlite3")
    assert user_version(conn) == SCHEMA_VERSION + 5
    conn.close()


def test_corrupt_or_unreachable_database_gives_a_clear_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "history.sqlite3"
    corrupt.write_bytes(b"this is not a database at all, just some text\n" * 100)
    with pytest.raises(HistoryError, match="move it aside") as caught:
        History(corrupt)
    assert str(corrupt) in str(caught.value)

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(HistoryError, match="cannot be opened") as caught:
        History(blocker / "history.sqlite3")  # its folder is a file
    assert "PROCESS_MCP_STATE_DIR" in str(caught.value)


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from process_mcp.core.history import History

    path, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    with History(path) as history:
        for i in range(count):
            run = history.record_start(
                f"{name}{i}", command="cmd", args=[name], cwd="/w", label=name, supervisor=name
            )
            history.record_end(run.id, status="exited", exit_code=0, signal=None)
            history.stats("cmd", [name], "/w")
            history.enforce_cap(1 << 30)
    print("done")
    """
)


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    History(path).close()  # created and migrated once, so both writers race on data only
    count = 150
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    try:
        with History(path) as reader:  # reads go on while both write
            while any(w.poll() is None for w in writers):
                reader.runs(limit=5)
            outputs = [w.communicate(timeout=60) for w in writers]
            assert [w.returncode for w in writers] == [0, 0], outputs
            for name in ("a", "b"):
                assert len(reader.runs(name, limit=1000)) == count
                assert reader.stats("cmd", [name], "/w") == {
                    "runs": count,
                    "failures": 0,
                    "medianSeconds": pytest.approx(0, abs=1),
                }
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
            w.communicate()


def test_two_processes_migrate_a_new_file_once(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [w.communicate(timeout=60) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], outputs
    with History(path) as history:
        assert len(history.runs(limit=100)) == 10


def test_one_history_is_safe_to_share_between_threads(history: History) -> None:
    def work(name: str) -> None:
        for i in range(50):
            run = start(history, f"{name}{i}", label=name)
            end(history, run)
            history.stats("npm", ["test"], "/project")

    threads = [threading.Thread(target=work, args=(name,)) for name in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert history.stats("npm", ["test"], "/project") == {
        "runs": 200,
        "failures": 0,
        "medianSeconds": pytest.approx(0, abs=1),
    }
    assert {len(history.runs(name, limit=100)) for name in "abcd"} == {50}
