"""mcp-gateway: the MCP side. Relay, guards, catalogue security, IDE config install, audit log, CLI."""
