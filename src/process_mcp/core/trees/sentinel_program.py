"""The sentinel's program, and the sweep it shares with leftover cleanup. Standard library only.

Why a separate process: SIGKILL of the server cannot be caught, so whatever ends the managed
trees then must live outside it. The server starts this file once, as
``python -I -S sentinel_program.py INSTANCE_DIR GRACE CGROUP [--posix PSUTIL_DIR]`` (no site,
no package import:
it is up in milliseconds and costs ~10 MB), in its own session so that a signal to the
server's process group spares it. The server writes the ownership TOKEN as the first line
of its stdin (never on the command line, which every local user can read), then one line
per event:

``+ PID LO HI``         a managed leader (pgid == pid) and the range its start time lies in
                      (``/proc`` clock ticks since boot, read around the spawn);
``- PID``               that tree is gone, forget it;
``m PID START``         a member that left its leader's group and session (posix sticky
                      membership), ended too while it is the same process (START);
``bye``                 clean exit: the server has already ended everything, do nothing.

When stdin reaches EOF without ``bye`` the server died. With CGROUP (not empty: the server's cgroup
subtree, see ``containment.py``) it first ends every process under CGROUP/jobs (SIGKILL is
``cgroup.kill``) and deletes the subtree. Then, as without it, it ends:

* every process whose environment carries ``PROCESS_MCP_OWNER_<TOKEN>=`` (the server puts it
  in each managed process's environment and every descendant inherits it, so this finds
  ``setsid`` escapees and double-forked daemons already re-parented to init);
* the process group of each registered leader that is still the same process (its start
  time within the recorded range, so a reused pid never matches), or that is gone while
  its group still has members: the kernel keeps a pid number allocated while any process
  uses it as its pgid, so that group is still ours;
* every descendant of those, by parent links.

They are ended by the one shutdown sequence (``ending.py``: SIGTERM and SIGCONT, GRACE
seconds, SIGKILL to whatever is left), rescanning at every look so that what they fork
meanwhile is caught too. Then it deletes INSTANCE_DIR (logs and the instance ledger) unless
something survived, in which case the next server's leftover cleanup gets another go at it.

The server imports :func:`sweep` from this module too, for the leftovers of a server that
died with its sentinel (see ``instances.py``): one sweep for both.

Run as a file, this program cannot import its package (no site, and ``-I`` keeps its folder
off ``sys.path``), so it loads its stdlib-only siblings, ``ending.py`` and its process table,
by their paths (``importlib.machinery``, ~1.5 ms, where ``importlib.util`` costs ~4.5): the
linux backend's ``procfs.py``, or with ``--posix`` the posix backend's
``core/platform/posix_table.py`` (psutil, from PSUTIL_DIR put on ``sys.path``). Imported by
the server, it reads the selected backend's table.
"""

from __future__ import annotations

import os
import signal
import sys

_chosen = None  # the table module; None: the selected backend's (imported by the server)
if __package__:  # imported by the server
    from process_mcp.core.trees import ending
else:  # run as a file: load the siblings by path
    from importlib.machinery import SourceFileLoader

    def _sibling(name: str, folder: str = ""):  # type: ignore[no-untyped-def]
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, folder, f"{name}.py")
        module = type(sys)(name)
        module.__file__ = path
        SourceFileLoader(name, path).exec_module(module)
        return module

    ending = _sibling("ending")  # the table is chosen by main(): procfs.py or posix_table.py


def _table():  # type: ignore[no-untyped-def]
    """The process table module: the program's choice, or the server's backend's."""
    if _chosen is not None:
        return _chosen
    from process_mcp.core import platform

    return platform.backend().table


OWNER_PREFIX = "PROCESS_MCP_OWNER_"
ZOMBIE_STATES = ("Z", "X")  # a table line is (state, ppid, pgid, sid, start) in both tables
_KILL_PHASE = 3.0  # SIGKILL acts at once; only a process stuck in the kernel lasts this long


def owner_var(token: str) -> str:
    """The environment variable that marks a process (and its descendants) as ours."""
    return f"{OWNER_PREFIX}{token}"


def find_victims(
    needle: bytes | None,
    leaders: dict[int, tuple[int, int]],
    trust_orphan_groups: bool,
    members: dict[int, int] | None = None,
) -> dict[int, int]:
    """pid -> start ticks of every live process to end (see the module docstring).

    ``trust_orphan_groups``: also take the group of a leader that is gone. True right after
    the server died; False for old leftovers, where only the marked members are taken.
    ``members``: loose members (pid -> start) to take while they are the same process.
    Never raises.
    """
    source = _table()
    table = source.scan()
    members = members or {}
    me = os.getpid()
    groups = set()
    for leader, (earliest, latest) in leaders.items():
        current = table.get(leader)
        if (current is not None and earliest <= current[4] <= latest) or (
            current is None and trust_orphan_groups
        ):
            groups.add(leader)
    children: dict[int, list[int]] = {}
    roots = []
    for pid, (state, ppid, pgid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
        if pid == me or state in ZOMBIE_STATES:
            continue
        if (
            pgid in groups
            or members.get(pid) == table[pid][4]
            or (needle is not None and source.environ_value(pid, needle) is not None)
        ):
            roots.append(pid)
    victims: dict[int, int] = {}
    stack = roots
    while stack:
        pid = stack.pop()
        if pid in victims or pid == me:
            continue
        stat = table[pid]
        if stat[0] not in ZOMBIE_STATES:
            victims[pid] = stat[4]
        stack.extend(children.get(pid, ()))
    return victims


class _Victims:
    """What a sweep ends (a target of ``ending.py``), found afresh at every look."""

    def __init__(
        self,
        needle: bytes | None,
        leaders: dict[int, tuple[int, int]],
        trust: bool,
        members: dict[int, int] | None = None,
    ) -> None:
        self._args = (needle, leaders, trust, members)
        self.found = find_victims(*self._args)

    def signal(self, sig: int) -> None:
        read_stat = _table().read_stat
        for pid, start in self.found.items():
            current = read_stat(pid)
            if current is None or current[4] != start:
                continue  # gone, or the pid now names another process
            _quietly(os.kill, pid, sig)

    def survivors(self) -> list[int]:
        self.found = find_victims(*self._args)
        return sorted(self.found)

    def look_again(self) -> bool:
        """Nothing to add: every look (``survivors``) is a fresh scan."""
        return False


def sweep(
    needle: bytes | None,
    leaders: dict[int, tuple[int, int]],
    grace: float,
    trust_orphan_groups: bool,
    members: dict[int, int] | None = None,
) -> list[int]:
    """End every victim (see the module docstring) by the sequence of ``ending.py``.

    Blocks for at most about ``grace`` + 3 s. Returns the pids that survived SIGKILL (stuck
    in the kernel); empty means every victim is verified gone. Raises nothing of its own.
    """
    victims = _Victims(needle, leaders, trust_orphan_groups, members)
    if not victims.found:
        return []
    return ending.end_blocking(victims, grace, _KILL_PHASE)


class _Cgroup:
    """Every process in a cgroup and below (a target of ``ending.py``): where the server
    placed each run in a cgroup under ``jobs/``, this is all of them, escapees included;
    SIGKILL is one write to ``cgroup.kill`` (kernel 5.14+; else each member is killed,
    repeatedly, until none is left)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _members(self, path: str) -> list[int]:
        pids = []
        try:
            with open(os.path.join(path, "cgroup.procs"), "rb") as handle:
                pids = [int(pid) for pid in handle.read().split()]
            subdirs = [entry.path for entry in os.scandir(path) if entry.is_dir()]
        except OSError:
            return pids
        for subdir in subdirs:
            pids.extend(self._members(subdir))
        return pids

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            try:
                fd = os.open(os.path.join(self.path, "cgroup.kill"), os.O_WRONLY)
            except OSError:
                fd = -1
            if fd >= 0:
                try:
                    os.write(fd, b"1")
                    return
                except OSError:
                    pass
                finally:
                    os.close(fd)
        for pid in set(self._members(self.path)):
            _quietly(os.kill, pid, sig)

    def survivors(self) -> list[int]:
        return sorted(set(self._members(self.path)))

    def look_again(self) -> None:
        """Nothing to do: a cgroup holds everything forked in it."""


def remove_cgroups(path: str) -> None:
    """Delete an (emptied) cgroup subtree bottom-up; what is busy or gone stays as is."""
    for parent, _dirs, _files in os.walk(path, topdown=False):
        _quietly(os.rmdir, parent)


def _quietly(action, *args) -> None:  # type: ignore[no-untyped-def]
    """Run an OS call whose failure only means the target is already gone. (Not
    ``contextlib.suppress``: the sentinel imports as little as it can.)"""
    try:
        action(*args)
    except OSError:
        return


def remove_tree(path: str) -> None:
    """``shutil.rmtree`` without importing shutil (and what it drags in). Never raises:
    whatever cannot be removed stays."""
    for parent, dirs, files in os.walk(path, topdown=False):
        for name in files:
            _quietly(os.unlink, os.path.join(parent, name))
        for name in dirs:
            _quietly(os.rmdir, os.path.join(parent, name))
    _quietly(os.rmdir, path)


def watch(stream, token: str, instance_dir: str, grace: float, cgroup: str = "") -> bool:
    """Follow the server's messages until EOF; end everything unless it said ``bye``.

    ``cgroup``: the server's cgroup subtree (runs under its ``jobs/``), ended first and
    then deleted. Returns True when everything it had to end is gone (then INSTANCE_DIR is
    deleted too).
    """
    leaders: dict[int, tuple[int, int]] = {}
    members: dict[int, int] = {}
    for line in stream:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == b"bye":
            return True
        if parts[0] == b"+" and len(parts) == 4:
            leaders[int(parts[1])] = (int(parts[2]), int(parts[3]))
        elif parts[0] == b"-" and len(parts) == 2:
            leaders.pop(int(parts[1]), None)
        elif parts[0] == b"m" and len(parts) == 3:
            members[int(parts[1])] = int(parts[2])
    survivors = []
    if cgroup:
        survivors = ending.end_blocking(_Cgroup(os.path.join(cgroup, "jobs")), grace, _KILL_PHASE)
    survivors += sweep((owner_var(token) + "=").encode(), leaders, grace, True, members)
    if cgroup and not survivors:
        remove_cgroups(cgroup)
    if survivors:
        print(
            f"process-mcp sentinel: could not end pids {survivors}; "
            f"the next server start retries (instance ledger in {instance_dir})",
            file=sys.stderr,
        )
        return False
    remove_tree(instance_dir)
    return True


def main(argv: list[str]) -> int:
    """Run the sentinel (``argv``: program, INSTANCE_DIR, GRACE[, CGROUP[, --posix DIR]];
    the TOKEN is the first line of stdin); returns the exit status: 0 when nothing it had
    to end survived."""
    global _chosen
    if "--posix" in argv:
        at = argv.index("--posix")
        sys.path.insert(0, argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
        _chosen = _sibling("posix_table", os.path.join("..", "platform"))
    elif _chosen is None:
        _chosen = _sibling("procfs")
    # Terminal signals are for the server (whose group we left); SIGTERM still ends us,
    # and the server then starts a new sentinel.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    instance_dir, grace = argv[1], float(argv[2])
    cgroup = argv[3] if len(argv) > 3 else ""
    token = sys.stdin.buffer.readline().strip().decode("ascii", "replace")
    if not token:  # the server died before its first line: the next server's leftover
        return 0  # cleanup ends what it had started (its server.json holds the token)
    return 0 if watch(sys.stdin.buffer, token, instance_dir, grace, cgroup) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
