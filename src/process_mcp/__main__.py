from process_mcp.entry import main

main()
