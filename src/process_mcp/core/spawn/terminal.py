"""Running a child under a pseudo-terminal, without ``preexec_fn`` and without ``fork()``.

A program under a terminal must see ``isatty()`` true *and* own the terminal as its
controlling terminal: otherwise ``/dev/tty`` cannot be opened (``getpass``, ``ssh``,
``sudo`` and ``npm`` prompt through it), Ctrl-C typed as ``\\x03`` raises no SIGINT, and job
control is off. ``subprocess.Popen`` cannot set a controlling terminal: it has no
TIOCSCTTY option, ``preexec_fn`` forces a real fork (44-54 ms with a large heap, and it is
unsafe with threads), and ``os.login_tty``/``pty.fork`` need a fork too.

The cheapest correct way: spawn as usual with ``start_new_session=True`` (vfork + setsid)
and the terminal's slave as stdin/stdout/stderr, but through ``/bin/sh -c 'exec "$@" <"$0"'
<slave path> argv...``. The shell re-opens the slave as stdin without ``O_NOCTTY``; on Linux
a session leader without a controlling terminal that opens a terminal acquires it (and its
process group becomes the terminal's foreground group); then ``exec`` replaces the shell,
so the pid is the program's. Cost: one exec of ``sh`` (about 1 ms). Because a missing
program would only show up as the shell's exit 127, the program is looked up first and a
failure is reported like any other start error.

The terminal is 120x40 and output post-processing (``ONLCR``) is off, so the log gets
``\\n`` line ends rather than ``\\r\\n``; echo stays on, so what was typed is in the log, as
on a real terminal.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import shutil
import struct
import sys
import termios
from dataclasses import dataclass

from process_mcp.core.errors import StartFailed
from process_mcp.core.options import SHELL
from process_mcp.core.spawn import launch

COLUMNS, ROWS = 120, 40
# exec "$@" with stdin re-opened from the terminal's path ($0): that open makes it ours.
_ACQUIRE = 'exec "$@" <"$0"'


@dataclass
class Terminal:
    """A fresh pseudo-terminal: the master stays with us, the slave goes to the child."""

    master: int
    slave: int
    path: str

    @classmethod
    def open(cls) -> Terminal:
        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.ONLCR  # oflag: keep "\n" as is in the log
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        return cls(master=master, slave=slave, path=os.ttyname(slave))

    def eof_bytes(self) -> bytes:
        """The terminal's end-of-file character (Ctrl-D unless changed)."""
        cc = termios.tcgetattr(self.master)[6][termios.VEOF]
        return cc if isinstance(cc, bytes) else bytes([cc])

    def close_slave(self) -> None:
        """Drop our copy once the child has its own, so the master reads EIO when it is gone."""
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1


def wrap(argv: list[str], terminal: Terminal) -> list[str]:
    """The argv that makes ``terminal`` the controlling terminal, then execs ``argv``."""
    return [SHELL, "-c", _ACQUIRE, terminal.path, *argv]


def check_program(
    command: str, cwd: str, env: dict[str, str], *, check_format: bool = False
) -> None:
    """Fail like a direct spawn would if ``command`` cannot be executed (see module doc).

    ``check_format``: also refuse a file the kernel cannot execute (ENOEXEC), for a launcher
    that execs it after the spawn has returned (cgroup placement)."""
    if "/" in command:
        path = command if os.path.isabs(command) else os.path.join(cwd, command)
        if not os.path.exists(path):
            raise _failure(errno.ENOENT, command, cwd)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise _failure(errno.EACCES, command, cwd, path)
    else:
        found = shutil.which(command, path=env.get("PATH", os.defpath))
        if found is None:
            raise _failure(errno.ENOENT, command, cwd)
        path = found if os.path.isabs(found) else os.path.join(cwd, found)
    if check_format and not _executable_format(path):
        raise _failure(errno.ENOEXEC, command, cwd, path)


def _executable_format(path: str) -> bool:
    """Whether the kernel would run ``path``: a ``#!`` line, or an ELF header of this
    machine's class, byte order and architecture (read from our own interpreter). A shell
    in between would run anything else as a script, where a direct exec fails ENOEXEC."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_ELF_HEAD)
    except OSError:
        return True  # let the exec itself report it
    if head.startswith(b"#!"):
        return True
    return len(head) == _ELF_HEAD and _elf_signature(head) == _own_elf_signature()


_ELF_HEAD = 20  # e_ident (16), e_type (2), e_machine (2)


def _elf_signature(head: bytes) -> bytes | None:
    """Magic, class, byte order, version and machine of an ELF header; None if not ELF."""
    if not head.startswith(b"\x7fELF") or len(head) < _ELF_HEAD:
        return None
    return head[:7] + head[18:20]


@functools.cache
def _own_elf_signature() -> bytes | None:
    with open(sys.executable, "rb") as handle:
        return _elf_signature(handle.read(_ELF_HEAD))


def _failure(code: int, command: str, cwd: str, path: str | None = None) -> StartFailed:
    error = OSError(code, os.strerror(code), path)
    return StartFailed(launch._explain(error, command, cwd))
