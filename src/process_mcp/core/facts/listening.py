"""Which TCP ports a process tree listens on, read straight from ``/proc``.

Both ``wait`` (port readiness) and live facts (``listeningPorts``) ask this, so the two
halves live here once: the listening sockets of a network namespace (inode → port, from
``/proc/<pid>/net/tcp{,6}``: two small file reads, cheap to poll) and the socket inodes a
process holds (its ``/proc/<pid>/fd`` links). A TCP connect would also say "something
listens", but not *who*: a stale server on the same port would make a wait succeed while
the new one is still failing.
"""

from __future__ import annotations

import contextlib
import os

from process_mcp.core.trees import proc

_LISTEN = "0A"


def listening_sockets(pid: int | str = "self") -> dict[int, int]:
    """Inode → port of every listening TCP socket (IPv4 and IPv6) in ``pid``'s namespace."""
    found: dict[int, int] = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as handle:
                next(handle, None)  # header
                for row in handle:
                    fields = row.split()
                    if len(fields) > 9 and fields[3] == _LISTEN:
                        found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
        except OSError:
            continue  # no IPv6, or /proc/net hidden: fewer ports, not a failure
    return found


def socket_inodes(pid: int) -> set[int] | None:
    """Inodes of the sockets ``pid`` holds open; empty when it is gone, None when we may
    not look (a setuid child)."""
    inodes: set[int] = set()
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except PermissionError:
        return None
    except OSError:
        return inodes
    for name in names:
        with contextlib.suppress(OSError):
            target = os.readlink(f"{directory}/{name}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def tree_pids(root: int) -> list[int]:
    """The root, its descendants, and its process group (members that left the tree)."""
    table = proc.process_table()
    pids = {root}
    pids.update(info.pid for info in proc.descendants(root, table) if not info.zombie)
    pids.update(info.pid for info in proc.group_members(root, table))
    return sorted(pids)


def tree_listens_on(root: int, port: int) -> bool:
    """True when a process of ``root``'s tree holds a socket listening on TCP ``port``."""
    wanted = {inode for inode, bound in listening_sockets(root).items() if bound == port}
    if not wanted:
        return False
    for pid in tree_pids(root):
        held = socket_inodes(pid)
        if held is None or held & wanted:
            return True  # a tree member we cannot look inside: the port does listen
    return False
