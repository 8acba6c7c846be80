"""process-mcp: an MCP server that runs, supervises, reads and stops long-running commands."""

__version__ = "0.1.0"
