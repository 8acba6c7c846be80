"""The per-user supervisor: its transport (socket server, protocol, client)."""
