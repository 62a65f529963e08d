"""The root typer application, shared by the command modules."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mcp-gateway",
    help="A security gateway for MCP: relays every message and enforces policies written in plain English.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
policy_app = typer.Typer(help="Compile, check, explain, test and tune policies.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
