"""The linux backend's two halves of "which TCP ports does a tree listen on".

The listening sockets of a network namespace (inode → port, from
``/proc/<pid>/net/tcp{,6}``: two small file reads, cheap to poll) and the socket inodes a
process holds (its ``/proc/<pid>/fd`` links). The question itself is asked through the OS
backend (``core/platform``; ``facts/ports.py: tree_listens_on``); the posix backend asks
psutil for each tree member's sockets instead. A TCP connect would also say "something
listens", but not *who*: a stale server on the same port would make a wait succeed while
the new one is still failing. Imports nothing of the seam: the seam imports it.
"""

from __future__ import annotations

import contextlib
import os

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
