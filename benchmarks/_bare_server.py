"""Baseline: a bare MCPServer of the same SDK with one trivial async echo tool."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("bare")


@server.tool()
async def echo(text: str = "") -> str:
    """Return the text."""
    return text


if __name__ == "__main__":
    server.run()
