"""The one way a tree of processes is ended: SIGTERM+SIGCONT, grace, look again, SIGKILL, verify.

Every path that ends processes runs this sequence: ``stop``, ``remove``, the server's
shutdown (``stopping.py``), the sentinel after the server died and the next server's cleanup
of a crash's leftovers (``sentinel_program.sweep``). They differ only in *what* they end (a
target) and in how they wait between looks (an event-loop pause or ``time.sleep``):

1. SIGTERM, then SIGCONT (a stopped process cannot act on SIGTERM), to every process of the
   target — skipped when ``grace`` is 0 (a forced stop, or what is already dead-ended);
2. wait up to ``grace`` for the target to be gone;
3. look again (processes forked meanwhile join the target);
4. SIGKILL to whatever lives, repeated after each look, for up to ``kill_wait``; only a
   process stuck in the kernel (state D) outlasts that;
5. once all of it is dead, look again: what it forked just before dying (a tree that
   hops pids, forking and exiting every few milliseconds) joins the target and step 4
   repeats, until a look finds nothing new;
6. return the survivors: empty means verified gone by that last look.

Standard library only (``signal``, ``time``): the sentinel, run as ``python -I -S``, loads this
file by its path and must stay up in milliseconds.
"""

from __future__ import annotations

import signal
import time

POLL = 0.02  # seconds between looks when nothing tells us sooner

TYPE_CHECKING = False  # typing costs the sentinel milliseconds to import; only checkers read this
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Protocol

    class Target(Protocol):
        """What is being ended; each method must be cheap enough to call every ``POLL``."""

        def signal(self, sig: int) -> None:
            """Send ``sig`` to every process of the target still alive (never raises)."""

        def survivors(self) -> list[int]:
            """Pids of the target still alive, sorted; empty once it is gone."""

        def look_again(self) -> bool:
            """Add processes of the target that appeared since it was found; whether any
            live one was added (False also when every look is already a fresh scan)."""

    class PausingTarget(Target, Protocol):
        async def pause(self, longest: float) -> None:
            """Return after at most ``longest`` seconds, sooner if the target may be gone."""


def steps(target: Target, grace: float, kill_wait: float) -> Generator[float, None, list[int]]:
    """The sequence as a generator, so that a blocking and an async caller share it.

    Each value yielded is the time left in the current phase: the caller waits at most that
    long (less if it can tell sooner that something changed), then resumes it. Its return
    value (``StopIteration.value``) is the survivors: empty when the target is verified gone.
    Raises nothing of its own.
    """
    if grace > 0:
        target.signal(signal.SIGTERM)
        target.signal(signal.SIGCONT)
        deadline = time.monotonic() + grace
        while target.survivors() and (left := deadline - time.monotonic()) > 0:
            yield left
    target.look_again()
    deadline = time.monotonic() + kill_wait
    while True:
        while survivors := target.survivors():
            target.signal(signal.SIGKILL)
            left = deadline - time.monotonic()
            if left <= 0:
                return survivors
            yield left
        # Everything known is dead, but one may have forked just before SIGKILL (a tree
        # that hops pids: fork, setsid, parent exits). Only looks that find nothing new
        # prove the target gone (a dead process forks no more); two in a row, since one
        # can miss a process that forks and exits while the look reads it.
        if not target.look_again() and not target.look_again():
            return []


class Sequence:
    """:func:`steps` for a ``for`` loop, the one way both callers drive it: iterating
    yields the waits; once the loop is over, ``survivors`` holds the sequence's result
    (empty: the target verified gone). Iterate it once."""

    survivors: list[int]

    def __init__(self, target: Target, grace: float, kill_wait: float) -> None:
        self._steps = steps(target, grace, kill_wait)

    def __iter__(self) -> Generator[float, None, None]:
        self.survivors = yield from self._steps


def end_blocking(target: Target, grace: float, kill_wait: float) -> list[int]:
    """Run the sequence, sleeping ``POLL`` between looks; returns the survivors (pids).

    On return the target is gone, verified by a last look, unless survivors are returned;
    it takes at most about ``grace + kill_wait`` seconds. Raises nothing of its own.
    """
    sequence = Sequence(target, grace, kill_wait)
    for left in sequence:
        time.sleep(min(POLL, left))
    return sequence.survivors


async def end(target: PausingTarget, grace: float, kill_wait: float) -> list[int]:
    """Run the sequence on an event loop, waiting with ``target.pause``; returns survivors.

    Same guarantees as :func:`end_blocking`; cancelling it stops the sequence where it is
    (signals already sent stay sent).
    """
    sequence = Sequence(target, grace, kill_wait)
    for left in sequence:
        await target.pause(left)
    return sequence.survivors
