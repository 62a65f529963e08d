"""The ``mcp-gateway`` command line.

Each command group lives in its own module and registers itself on `app`. Human output goes to
stderr, ``--json`` output to stdout. Exit codes: 0 ok, 1 findings or failing cases,
2 usage or configuration error, 3 runtime failure.
"""

from __future__ import annotations

import sys

from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    from . import commands  # noqa: F401  (registers every command on `app`)

    app(args=_lasso_compatible(sys.argv[1:]), prog_name="mcp-gateway")


def _lasso_compatible(argv: list[str]) -> list[str]:
    """Accept Lasso's IDE entry (``mcp-gateway --mcp-json-path PATH -p basic``) as ``run``."""
    if argv and argv[0] in ("--mcp-json-path", "-p", "--plugin") or any(
        arg.startswith("--mcp-json-path") for arg in argv[:1]
    ):
        return ["run", *argv]
    return argv
