"""The progress channel of the tool call being handled.

Tool handlers take ``(manager, arguments)`` and know nothing of MCP requests; the few
that block (``wait``) report progress through this context variable, which the
dispatcher sets for the duration of each call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar

ProgressSink = Callable[[float, float | None, str | None], Awaitable[None]]

current_progress: ContextVar[ProgressSink | None] = ContextVar("current_progress", default=None)
