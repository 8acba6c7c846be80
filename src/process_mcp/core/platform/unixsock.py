"""The supervisor's Unix socket on each OS: who is at the other end, how a long path is
reached (the folder's rule is ``core.settings.runtime_dir``).

Standard library only and nothing heavy: the person's CLI (no asyncio, no psutil) imports
it as well as the supervisor and the MCP front-end, and all three check the peer with the
one function here, :func:`stranger`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from process_mcp.core.settings import SUN_PATH_MAX

# macOS and FreeBSD: getsockopt(SOL_LOCAL, LOCAL_PEERCRED) gives a struct xucred
# {u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]}, and
# LOCAL_PEERPID (macOS only) the pid. Literal values: Python's socket module exports none.
SOL_LOCAL = 0
LOCAL_PEERCRED = 1
LOCAL_PEERPID = 2
XUCRED = struct.Struct("=IIh2x16I")
_UCRED = struct.Struct("3i")  # Linux SO_PEERCRED: pid, uid, gid


class PeerCredentials(NamedTuple):
    pid: int  # 0 where the OS does not say (FreeBSD)
    uid: int
    gid: int


def parse_xucred(raw: bytes, pid: int = 0) -> PeerCredentials:
    """A ``struct xucred`` as ``LOCAL_PEERCRED`` returns it (gid: its first group, the
    effective one). Raises ValueError on a short or unknown buffer."""
    if len(raw) < XUCRED.size:
        raise ValueError(f"xucred of {len(raw)} bytes, expected {XUCRED.size}")
    version, uid, ngroups, *groups = XUCRED.unpack_from(raw)
    if version != 0:
        raise ValueError(f"xucred version {version}, expected 0")
    return PeerCredentials(pid, uid, groups[0] if ngroups > 0 else -1)


def peer_credentials(sock: Any) -> PeerCredentials | None:
    """The connected peer's pid/uid/gid, from ``SO_PEERCRED`` (Linux) or ``LOCAL_PEERCRED``
    (macOS, FreeBSD); None where the OS offers neither (the 0700 folder is then the only
    wall). Raises OSError when the socket cannot be asked."""
    if sys.platform.startswith(("darwin", "freebsd")):
        raw = sock.getsockopt(SOL_LOCAL, LOCAL_PEERCRED, XUCRED.size)
        pid = 0
        if sys.platform == "darwin":
            pid = struct.unpack("i", sock.getsockopt(SOL_LOCAL, LOCAL_PEERPID, 4))[0]
        return parse_xucred(raw, pid)
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    return PeerCredentials(*_UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size)))


def stranger(sock: Any) -> PeerCredentials | None:
    """The peer's credentials when it runs as another user than us, else None (ours, or the
    OS cannot tell). The one same-user check of the supervisor, the MCP front-end and the
    person's CLI: a planted socket would see our requests, a foreign client our processes."""
    peer = peer_credentials(sock)
    return peer if peer is not None and peer.uid != os.getuid() else None


@contextlib.contextmanager
def socket_address(path: Path, platform: str) -> Iterator[str]:
    """An address for ``bind``/``connect`` to ``path``. Past the ``sun_path`` limit the
    linux backend reaches it through ``/proc/self/fd/<dir fd>/<name>`` (the folder held open
    for the ``with`` block); elsewhere such a path is a clear OSError."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield str(path)
        return
    if platform != "linux" or not os.path.isdir("/proc/self/fd"):
        raise OSError(
            f"socket path {path} is longer than {SUN_PATH_MAX} bytes; "
            "set PROCESS_MCP_RUNTIME_DIR to a shorter folder"
        )
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
