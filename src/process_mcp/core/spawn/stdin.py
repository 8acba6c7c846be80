"""Writing to a child's stdin (a pipe or a terminal master) without ever blocking the loop.

A child that does not read fills the pipe (64 KiB) and a blocking ``write`` would freeze
every tool of the server. Writes are non-blocking: what the kernel does not take at once
waits in a bounded buffer, flushed by an event-loop writer callback as the child reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

from process_mcp.core.errors import InvalidRequest

MAX_PENDING = 1024 * 1024


@dataclass(frozen=True)
class InputReceipt:
    """What became of input so far: bytes the child's stdin took, bytes still queued, and
    whether more input can be sent."""

    bytes_written: int
    bytes_pending: int
    stdin_open: bool


class StdinClosed(InvalidRequest):
    """The child's stdin can take no more input (closed by ``eof``, or by the child)."""


class StdinWriter:
    """Owns ``fd``. ``eof`` is what ends the input: None closes the fd (a pipe); bytes are
    written instead (a terminal's VEOF character), because closing a terminal's master
    would hang the terminal up."""

    def __init__(self, fd: int, eof: bytes | None = None) -> None:
        self._fd = fd
        self._eof = eof
        self._loop = asyncio.get_running_loop()
        self._pending = bytearray()
        self._watching = False
        self._close_when_flushed = False
        self.closed = False
        self.eof_sent = False
        self.error: str | None = None
        self.written = 0
        self._at_line_start = True  # whether everything queued so far ends with a newline
        os.set_blocking(fd, False)

    @property
    def pending(self) -> int:
        """Bytes accepted but not yet taken by the child."""
        return len(self._pending)

    def receipt(self) -> InputReceipt:
        return InputReceipt(
            self.written, len(self._pending), not (self.eof_sent or self.error or self.closed)
        )

    def write(self, data: bytes, *, eof: bool = False) -> None:
        """Queue ``data`` (then the end of input when ``eof``); raise if input is over."""
        if self.error is not None:
            raise StdinClosed(self.error)
        if self.eof_sent:
            raise StdinClosed(
                "stdin was already closed by an earlier eof; nothing more can be sent"
            )
        if len(self._pending) + len(data) > MAX_PENDING:
            raise InvalidRequest(
                f"{len(self._pending)} bytes sent earlier are still waiting to be read by the "
                f"process, so {len(data)} more would exceed the {MAX_PENDING}-byte buffer; "
                "wait until it reads its input (see get-log) or send less"
            )
        self._pending += data
        if data:
            self._at_line_start = data.endswith((b"\n", b"\r"))
        if eof:
            self.eof_sent = True
            if self._eof is None:
                self._close_when_flushed = True
            else:
                # VEOF ends input only at the start of a line: after a partial line the
                # first one just delivers that line, so send a second one.
                self._pending += self._eof if self._at_line_start else self._eof * 2
        self._flush()

    def _flush(self) -> None:
        while self._pending:
            try:
                count = os.write(self._fd, self._pending)
            except BlockingIOError:
                break
            except OSError as exc:  # EPIPE: the child closed its stdin; EIO: terminal gone
                reason = os.strerror(exc.errno or 0)
                self.error = f"the process no longer reads its stdin ({reason})"
                self._pending.clear()
                self.close()
                return
            del self._pending[:count]
            self.written += count
        if self._pending and not self._watching:
            self._loop.add_writer(self._fd, self._flush)
            self._watching = True
        elif not self._pending:
            if self._watching:
                self._loop.remove_writer(self._fd)
                self._watching = False
            if self._close_when_flushed:
                self.close()

    def close(self) -> None:
        """Release the fd (queued bytes are dropped)."""
        if self.closed:
            return
        self.closed = True
        if self._watching:
            self._loop.remove_writer(self._fd)
            self._watching = False
        with contextlib.suppress(OSError):
            os.close(self._fd)
