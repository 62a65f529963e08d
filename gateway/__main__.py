"""``python -m gateway`` is ``mcp-gateway``."""

from .cli import main

main()
