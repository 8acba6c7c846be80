"""Learning on the event loop that a cgroup emptied (``populated 0``), with no thread and
no polling: one inotify descriptor (through ctypes; the standard library has no binding)
watches ``cgroup.events`` of every job. ``cgroup.events`` cannot be given to the loop
directly: the kernel flags its changes as POLLPRI, and EPOLLIN is always ready on it.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
from collections.abc import Callable
from pathlib import Path

from process_mcp.core.trees import cgroups

_IN_MODIFY = 0x2
_IN_IGNORED = 0x8000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
_libc = ctypes.CDLL(None, use_errno=True)


class EmptyWatcher:
    """Calls ``on_empty()`` once (on the loop) when a watched cgroup has no process left,
    at once (next loop turn) if it is already empty or gone."""

    def __init__(self) -> None:
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            number = ctypes.get_errno()
            raise OSError(number, f"inotify_init1: {os.strerror(number)}")
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._by_wd: dict[int, tuple[Path, Callable[[], None]]] = {}
        self._loop.add_reader(fd, self._ready)

    def watch(self, cgroup: Path, on_empty: Callable[[], None]) -> None:
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(cgroup / "cgroup.events"), _IN_MODIFY)
        if wd < 0:  # the cgroup is gone: it is empty
            self._loop.call_soon(on_empty)
            return
        self._by_wd[wd] = (cgroup, on_empty)
        self._check(wd)  # it may have emptied before the watch existed

    def unwatch(self, cgroup: Path) -> None:
        for wd, (path, _callback) in list(self._by_wd.items()):
            if path == cgroup:
                del self._by_wd[wd]
                _libc.inotify_rm_watch(self._fd, wd)

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._by_wd.clear()

    def _ready(self) -> None:
        changed: set[int] = set()
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & _IN_IGNORED:  # the cgroup was removed
                    entry = self._by_wd.pop(wd, None)
                    if entry is not None:
                        self._loop.call_soon(entry[1])
                else:
                    changed.add(wd)
        for wd in changed:
            self._check(wd)

    def _check(self, wd: int) -> None:
        entry = self._by_wd.get(wd)
        if entry is not None and not cgroups.populated(entry[0]):
            del self._by_wd[wd]
            _libc.inotify_rm_watch(self._fd, wd)
            self._loop.call_soon(entry[1])


async def wait_empty_async(cgroup: Path, timeout: float) -> bool:
    """Wait on the loop until ``cgroup`` is empty; False on timeout."""
    watcher = EmptyWatcher()
    emptied = asyncio.Event()
    try:
        watcher.watch(cgroup, emptied.set)
        try:
            await asyncio.wait_for(emptied.wait(), timeout)
        except TimeoutError:
            return False
        return True
    finally:
        watcher.close()
