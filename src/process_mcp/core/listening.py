"""Whether a process tree listens on a TCP port, read straight from ``/proc``.

A TCP connect to localhost would also answer "something listens", but not *who*: a
stale server from yesterday on the same port would make a wait succeed while the new
one is still failing. So: find the inodes of listening sockets on the port in the tree's
network namespace, then look for them among the tree's file descriptors. The first step
is two small file reads, so polling it while nothing listens costs almost nothing.
"""

from __future__ import annotations

import os

from process_mcp.core import tree

_LISTEN = "0A"


def listening_inodes(pid: int, port: int) -> set[str]:
    """Inodes of TCP sockets in LISTEN state on ``port`` (any address), seen from ``pid``."""
    inodes: set[str] = set()
    wanted = f"{port:04X}"
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as handle:
                next(handle, None)
                for row in handle:
                    fields = row.split()
                    if (
                        len(fields) > 9
                        and fields[3] == _LISTEN
                        and fields[1].rsplit(":", 1)[1] == wanted
                    ):
                        inodes.add(fields[9])
        except OSError:
            continue
    return inodes


def tree_pids(root: int) -> list[int]:
    """The root, its descendants, and its process group (members that left the tree)."""
    table = tree.process_table()
    pids = {root}
    pids.update(info.pid for info in tree.descendants(root, table) if not info.zombie)
    pids.update(info.pid for info in tree.group_members(root, table))
    return sorted(pids)


def tree_listens_on(root: int, port: int) -> bool:
    """True when a process of ``root``'s tree holds a socket listening on TCP ``port``."""
    inodes = listening_inodes(root, port)
    if not inodes:
        return False
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in tree_pids(root):
        fd_dir = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except PermissionError:
            return True  # cannot look inside (setuid child): the port does listen
        except OSError:
            continue
        for name in names:
            try:
                if os.readlink(f"{fd_dir}/{name}") in targets:
                    return True
            except OSError:
                continue
    return False
