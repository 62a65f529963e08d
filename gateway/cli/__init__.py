"""The ``mcp-gateway`` command line.

Each command group lives in its own module and registers itself on `app`. Human output goes to
stderr, ``--json`` output to stdout. Exit codes: 0 ok, 1 findings or failing cases,
2 usage or configuration error, 3 runtime failure.
"""

from __future__ import annotations

import sys

from ._app import app

__all__ = ["app", "main"]


# Which module registers each command. Only the module of the command being run is imported, so that
# `wrap` (spawned by the IDE for every session) does not pay for loading every other command.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "wrap": ("serve_cmds",),
    "run": ("serve_cmds",),
    "demo": ("demo_cmd",),
    "logs": ("logs_cmd",),
    "policy": ("policy_cmds", "test_cmds"),
    "scan": ("catalogue_cmds",),
    "pins": ("catalogue_cmds",),
    "install": ("install",),
    "uninstall": ("install",),
    "doctor": ("doctor_cmd",),
}


def main() -> None:
    import importlib

    argv = _lasso_compatible(sys.argv[1:])
    wanted = COMMAND_MODULES.get(argv[0]) if argv else None
    if wanted is None:
        from . import commands  # noqa: F401  (registers every command on `app`, for --help and errors)
    else:
        for module in wanted:
            importlib.import_module(f"{__name__}.{module}")
    import typer

    from ._common import cli_errors

    try:
        with cli_errors():  # the last boundary: an unreadable file is a message, not a traceback
            app(args=argv, prog_name="mcp-gateway")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)


def _lasso_compatible(argv: list[str]) -> list[str]:
    """Accept Lasso's IDE entry (``mcp-gateway --mcp-json-path PATH -p basic``) as ``run``."""
    if (argv and argv[0] in ("--mcp-json-path", "-p", "--plugin")) or any(
        arg.startswith("--mcp-json-path") for arg in argv[:1]
    ):
        return ["run", *argv]
    return argv
