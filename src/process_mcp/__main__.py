import sys

if sys.argv[1:2] == ["supervisor"]:  # skip the MCP front-end's imports: start-up is paid per day
    from process_mcp.supervisor.__main__ import main as supervisor_main

    sys.exit(supervisor_main(sys.argv[2:]))

from process_mcp.cli import main

main()
