from process_mcp.cli import main

main()
