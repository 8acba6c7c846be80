"""The signals a client may send, and whether an end was caused by one of them.

A process is ``crashed`` when it ended "by a signal we did not send". A signal
sent through the ``signal`` tool is one we sent on the client's request, so a process that
dies of it (or exits with the shell convention 128+n for it, as ``sh`` traps and Node do)
is ``stopped``, like one ended by ``stop``; its ``signal``/``exitCode`` still say how. A
process that survives the signal and later fails on its own is still ``crashed``. Ctrl-C
(``\x03``) or Ctrl-\\ (``\x1c``) typed through ``send-input`` under a terminal makes the
terminal send SIGINT/SIGQUIT to the process: those count as sent by us too.
"""

from __future__ import annotations

import signal

SIGNALS: dict[str, int] = {
    name: int(getattr(signal, name))
    for name in (
        "SIGINT",
        "SIGTERM",
        "SIGKILL",
        "SIGHUP",
        "SIGUSR1",
        "SIGUSR2",
        "SIGQUIT",
        "SIGSTOP",
        "SIGCONT",
    )
}


_TERMINAL_KEYS = {"\x03": "SIGINT", "\x1c": "SIGQUIT"}


def terminal_signals(text: str) -> set[int]:
    """Signals that typing ``text`` on a terminal (default settings) makes it send."""
    return {SIGNALS[name] for key, name in _TERMINAL_KEYS.items() if key in text}


def ended_by_our_signal(sent: set[int], signal_name: str | None, exit_code: int | None) -> bool:
    """Whether an end with ``signal_name``/``exit_code`` follows from a signal in ``sent``."""
    if signal_name is not None:
        return SIGNALS.get(signal_name) in sent
    return exit_code is not None and exit_code > 128 and exit_code - 128 in sent


# Python ignores these itself and ``subprocess`` restores them in every child; the other
# two cannot be caught.
_LEFT_AS_THEY_ARE = {"SIGPIPE", "SIGXFSZ", "SIGXFZ", "SIGKILL", "SIGSTOP"}


def _unheard(signum: int, frame: object) -> None:
    """A handler that does nothing: this process goes on ignoring the signal."""


def pass_no_ignored_signal_on() -> list[str]:
    """Replace every ignored signal of this process by a handler that does nothing, so it
    still ignores them while its children start with each at its default.

    Why: an ignored signal is inherited through ``exec`` and a handler is not. A launch in
    the background ignores SIGINT and SIGQUIT, ``nohup`` SIGHUP; passed on, Ctrl-C typed
    under a terminal, a hang-up or the ``signal`` tool's SIGQUIT would not reach a child
    as they do from a terminal. SIGCHLD ignored would make the kernel reap our children
    before we read their status: it goes back to its default. Call it in the main thread
    of a program that spawns, before the first spawn. Returns the names changed."""
    changed = []
    for signum in sorted(signal.valid_signals()):
        try:
            name = signal.Signals(signum).name
        except ValueError:  # a real-time signal: nothing sets those here
            continue
        if name in _LEFT_AS_THEY_ARE or signal.getsignal(signum) is not signal.SIG_IGN:
            continue
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGCHLD else _unheard)
        changed.append(name)
    return changed


def ignore_for_this_process_only(signum: int) -> None:
    """Ignore ``signum`` here without children inheriting it (see above)."""
    signal.signal(signum, _unheard)
