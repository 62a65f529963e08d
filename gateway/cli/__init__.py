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
    """Accept Lasso's IDE entry (``mcp-gateway --mcp-json-path PATH -p basic``, its options in any order,
    ``--enable-guardrails NAME`` for ``-p NAME``) as ``run``."""
    if not argv or argv[0] in COMMAND_MODULES or argv[0] in ("-h", "--help"):
        return argv
    if not any(arg == "--mcp-json-path" or arg.startswith("--mcp-json-path=") for arg in argv):
        return argv
    out: list[str] = ["run"]
    for arg in argv:
        if arg == "--enable-guardrails":
            out.append("-p")
        elif arg.startswith("--enable-guardrails="):
            out.append("--plugin=" + arg.split("=", 1)[1])
        else:
            out.append(arg)
    return out
