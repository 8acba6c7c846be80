"""The per-user supervisor: its transport (``protocol``, ``server``, ``client``,
``paths``), the service it runs (``service``: one ProcessManager shared by every session)
and a front-end's view of it (``remote``: the manager's API over one session)."""
