"""The person's side: ``process-mcp ps``, ``logs``, ``start``, ``stop``, ``restart``, ``wait``,
``history`` and ``top``, each a client of the per-user supervisor (started when needed).

Nothing here imports MCP, and the one-shot commands do not import ``asyncio`` either (a
blocking socket, :mod:`link`): on a small machine that import alone costs more than the
rest of ``ps``. ``rich`` is imported only when the output is a terminal."""
