"""``mcp-gateway wrap`` and ``mcp-gateway run``: the gateway itself."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ..specs import HTTP_TOKEN_ENV, ServerSpec, StdioCommand
from ._app import app
from ._common import ConfigOption, Failed, before_failing, cli_errors, fail, settings_from

if TYPE_CHECKING:
    from ..handshake import EarlyStart
    from ..remote_start import RemoteStart
    from ..run_start import RunStart
    from ..serve import GatewayParts
    from ..settings import Settings

PoliciesOpt = Annotated[
    list[Path] | None, typer.Option("--policies", help="Extra policy file or directory; repeatable.")
]
JudgeModelOpt = Annotated[
    str | None, typer.Option("--judge-model", help="litellm model for the judge, e.g. ollama_chat/qwen2.5:1.5b.")
]
JudgeBaseOpt = Annotated[str | None, typer.Option("--judge-api-base", help="API base URL of the judge model.")]
NoBuiltinOpt = Annotated[bool, typer.Option("--no-builtin", help="Do not enforce the built-in policies.")]
NoAuditOpt = Annotated[bool, typer.Option("--no-audit", help="Do not write the audit log.")]
AuditDbOpt = Annotated[Path | None, typer.Option("--audit-db", help="Audit log SQLite file.")]
TransportOpt = Annotated[Literal["stdio", "http"], typer.Option("--transport", help="How clients reach the gateway.")]
PortOpt = Annotated[int, typer.Option("--port", help="Port for --transport http (loopback).")]
BEARER_ENV = HTTP_TOKEN_ENV
HttpTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--http-token",
        envvar=BEARER_ENV,
        help="With --transport http, require 'Authorization: Bearer <token>'. Prefer the environment variable: "
        "a command line is visible to other local users.",
    ),
]


def _max_message_bytes() -> int:
    """The message size limit, read before the settings are (a server started early, a refusal)."""
    return _env_int("MCP_GATEWAY_MAX_MESSAGE_BYTES", 16 * 1024 * 1024)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _http_token(value: str | None) -> str | None:
    # click reads an empty variable as unset: a token meant to be set must not silently turn auth off.
    if (value is None and os.environ.get(BEARER_ENV) is not None) or (value is not None and not value.strip()):
        fail(f"{BEARER_ENV} (or --http-token) is set but empty; set a token or unset the variable")
    if value is not None and (value != value.strip() or not value.isascii() or not value.isprintable()):
        # HTTP carries header values as bytes read as Latin-1, and a client trims spaces: such a token never matches
        fail(f"{BEARER_ENV} (or --http-token) must be printable ASCII without leading or trailing spaces")
    return value


def _header(value: str) -> tuple[str, str]:
    name, sep, rest = value.partition(":")
    if not sep or not name.strip():
        fail(f"--header {value!r} must look like 'Name: value'")
    return name.strip(), rest.strip()


@app.command(context_settings={"allow_interspersed_args": False})
def wrap(
    command: Annotated[list[str] | None, typer.Argument(help="The server's command and arguments, after --.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Server name for policies and logs.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="A remote server (Streamable HTTP or SSE) instead.")] = None,
    remote_transport: Annotated[
        Literal["http", "sse"], typer.Option("--remote-transport", help="Protocol of the remote server at --url.")
    ] = "http",
    header: Annotated[list[str] | None, typer.Option("--header", help="'Name: value' for --url; repeatable.")] = None,
    policies: PoliciesOpt = None,
    no_builtin: NoBuiltinOpt = False,
    judge_model: JudgeModelOpt = None,
    judge_api_base: JudgeBaseOpt = None,
    transport: TransportOpt = "stdio",
    port: PortOpt = 8765,
    http_token: HttpTokenOpt = None,
    no_audit: NoAuditOpt = False,
    audit_db: AuditDbOpt = None,
    config: Path | None = ConfigOption,
) -> None:
    """Put the gateway in front of one server.

    Example: `mcp-gateway wrap --name fs -- npx -y @modelcontextprotocol/server-filesystem ~`."""
    if bool(command) == bool(url):
        fail("give either a server command after '--' or --url, not both and not neither")
    early = None
    if command and transport == "stdio":
        # Start the server and relay the client's initialize while the rest of the gateway loads.
        from ..errors import DownstreamError
        from ..handshake import start_early

        try:
            early = start_early(
                name or Path(command[0]).name,
                StdioCommand(command[0], tuple(command[1:]), cwd=os.getcwd()),
                max_bytes=_max_message_bytes(),
            )
        except DownstreamError as exc:
            fail(str(exc))
    if command:
        server_name = name or Path(command[0]).name
        spec = ServerSpec(name=server_name, stdio=StdioCommand(command[0], tuple(command[1:]), cwd=os.getcwd()))
    else:
        assert url is not None
        if not url.startswith(("http://", "https://")):
            fail(f"--url {url!r}: give the server's http:// or https:// URL (e.g. http://127.0.0.1:8000/mcp)")
        server_name = name or url.split("//", 1)[-1].split("/", 1)[0]
        spec = ServerSpec(
            name=server_name, url=url, transport=remote_transport, headers=tuple(_header(h) for h in header or [])
        )
    token = _http_token(http_token) if transport == "http" else None
    fast: RemoteStart | None = None

    def tell(message: str) -> None:
        for started in (early, fast):
            if started is not None:
                started.refuse_first(f"mcp-gateway could not start: {message}")

    try:
        settings = _serving_settings(config, judge_model, judge_api_base, no_builtin, no_audit, audit_db)
        if early is not None:
            early.settle(settings.pins_db if settings.pins else None)  # its answer's instructions meet their pin
            # Leave the cores to the starting server until it has answered (bounded: a slow server or a
            # client that waits before initializing must not hold the gateway back; a person at a terminal
            # sends no initialize, and a mistake in the setup is reported at once).
            if not os.isatty(0):
                early.done.wait(timeout=3.0)
        if url and transport == "stdio" and remote_transport == "http":
            # Send the client's initialize to the server and relay its answer while the rest loads.
            from ..remote_start import start_remote

            fast = start_remote(
                server_name,
                url,
                dict(spec.headers),
                max_bytes=settings.max_message_bytes,
                timeout_s=settings.init_timeout_s,
                pins_db=settings.pins_db if settings.pins else None,
            )
        # over stdio the models load once the server has answered initialize, not alongside its start
        with before_failing(tell):
            parts, pipes = _serving_parts(settings, policies or [], transport, start=transport != "stdio")
    except BaseException as exc:  # the client is told why (`EarlyStart.refuse`), not left with a server that vanished
        for started in (early, fast):
            if started is not None:
                started.refuse(_not_started(exc))
        raise
    from ..serve import run, serve_wrap_stdio

    try:
        if transport == "stdio":
            run(serve_wrap_stdio, spec, settings, parts, early, fast, use_uvloop=pipes)
        else:
            from ..http_front import serve_wrap_http

            with cli_errors():
                run(serve_wrap_http, spec, settings, parts, port, token)
    except KeyboardInterrupt:
        pass
    finally:
        parts.close()


def _start_ahead(specs: Sequence[ServerSpec], max_bytes: int) -> tuple[dict[str, EarlyStart], dict[str, str]]:
    """Start every stdio server of a `run` now, by name: each takes about as long to start as the gateway
    takes to load, and the client's initialize waits for both. A server that cannot start is said so to the
    client at initialize: its reason is the second dict, by name."""
    from ..errors import DownstreamError
    from ..handshake import spawn_server

    started: dict[str, EarlyStart] = {}
    unstarted: dict[str, str] = {}
    for spec in specs:
        if spec.stdio is None:
            continue
        try:
            started[spec.name] = spawn_server(spec.name, spec.stdio, max_bytes=max_bytes)
        except DownstreamError as exc:
            unstarted[spec.name] = str(exc)
    return started, unstarted


def _fast_start(
    specs: Sequence[ServerSpec], started: dict[str, EarlyStart], unstarted: dict[str, str], settings: Settings
) -> RunStart:
    """Answer the client's initialize with the started servers while the gateway loads (`gateway.run_start`)."""
    from ..run_start import start_run

    for early in started.values():  # started before the settings were read: the limit is theirs from now on
        early.max_bytes = settings.max_message_bytes
    fast = start_run(
        started,
        unstarted=unstarted,
        order=[spec.name for spec in specs],
        max_bytes=settings.max_message_bytes,
        init_timeout_s=settings.init_timeout_s,
        grace_s=settings.start_grace_s,
        pins_db=settings.pins_db if settings.pins else None,
    )
    # Leave the cores to the starting servers until they have answered (bounded, as in wrap).
    if not os.isatty(0):
        fast.done.wait(timeout=3.0)
    return fast


def _not_started(exc: BaseException) -> str:
    """What the client of a gateway whose setup failed is told: the message the user was shown, or where to
    look for an error the CLI did not expect."""
    if isinstance(exc, Failed):
        return f"mcp-gateway could not start: {exc.message}"
    return "mcp-gateway could not start; its stderr log says why"


def _serving_settings(
    config: Path | None,
    judge_model: str | None,
    judge_api_base: str | None,
    no_builtin: bool,
    no_audit: bool,
    audit_db: Path | None,
    **overrides: object,
) -> Settings:
    """The settings of `wrap` and `run`: the file and environment, then their options."""
    return settings_from(
        config,
        judge={"model": judge_model, "api_base": judge_api_base},
        builtin_policies=False if no_builtin else None,
        audit=False if no_audit else None,
        audit_db=audit_db,
        **overrides,
    )


def _serving_parts(
    settings: Settings, policies: list[Path], transport: str, *, start: bool
) -> tuple[GatewayParts, bool]:
    """The policy files checked (a setup that cannot work stops here, before anything is served), then the
    engine host (loading when `start`), audit log and pins; and whether stdio is pipes."""
    from ..runtime import check_policy_files
    from ..serve import make_parts, stdio_is_pipes

    with cli_errors():
        check_policy_files(settings, policies)
        pipes = stdio_is_pipes() if transport == "stdio" else True
        return make_parts(settings, policies, start=start), pipes


# Lasso's plugin names, mapped onto our built-in policies (its 'xetrack' logging is our audit log).
LASSO_PLUGINS: dict[str, list[str]] = {"basic": ["secrets"], "presidio": ["pii"], "xetrack": []}
BUILTIN_IDS = ("secrets", "pii", "prompt-injection", "content-safety", "tool-poisoning")


def _disabled_by_plugins(plugins: list[str]) -> list[str] | None:
    if not plugins:
        return None
    unknown = [p for p in plugins if p not in LASSO_PLUGINS]
    if unknown:
        fail(
            f"unknown plugin(s) {', '.join(unknown)}; known: {', '.join(LASSO_PLUGINS)} "
            "(mcp-gateway enforces its own built-in policies; drop -p to get all of them)"
        )
    wanted = {policy for plugin in plugins for policy in LASSO_PLUGINS[plugin]}
    return [policy for policy in BUILTIN_IDS if policy not in wanted]


@app.command("run")
def run_cmd(
    mcp_json_path: Annotated[Path, typer.Option("--mcp-json-path", help="An mcp.json (mcpServers or servers).")],
    plugin: Annotated[list[str] | None, typer.Option("--plugin", "-p", help="Lasso-compatible plugin names.")] = None,
    scan: Annotated[
        bool, typer.Option("--scan", help="Accepted for Lasso compatibility: tool lists are always scanned.")
    ] = False,
    policies: PoliciesOpt = None,
    no_builtin: NoBuiltinOpt = False,
    judge_model: JudgeModelOpt = None,
    judge_api_base: JudgeBaseOpt = None,
    transport: TransportOpt = "stdio",
    port: PortOpt = 8765,
    http_token: HttpTokenOpt = None,
    no_audit: NoAuditOpt = False,
    audit_db: AuditDbOpt = None,
    config: Path | None = ConfigOption,
) -> None:
    """Put the gateway in front of every server of an mcp.json; tools become `server__tool`."""
    from ..mcpjson import check_prefixes, load_servers

    started: dict[str, EarlyStart] = {}
    fast: RunStart | None = None

    def tell(message: str) -> None:
        if fast is not None:
            fast.refuse_first(f"mcp-gateway could not start: {message}")

    try:
        disable = _disabled_by_plugins(plugin or [])
        if no_builtin:
            disable = None  # the plugins choose among built-in policies, and there are none
        with cli_errors():
            specs = load_servers(mcp_json_path.expanduser())
            check_prefixes(specs, mcp_json_path)
        unstarted: dict[str, str] = {}
        if transport == "stdio":  # before the settings are read (pydantic's import): the servers start sooner
            started, unstarted = _start_ahead(specs, _max_message_bytes())
        settings = _serving_settings(config, judge_model, judge_api_base, no_builtin, no_audit, audit_db)
        if disable:  # what the plugins leave out, on top of what the settings already switch off
            settings = settings.model_copy(update={"disable": list(dict.fromkeys([*settings.disable, *disable]))})
        token = _http_token(http_token) if transport == "http" else None
        if started and len(started) + len(unstarted) == len(specs):  # no remote server: all answer from here
            fast = _fast_start(specs, started, unstarted, settings)
        with before_failing(tell):
            parts, pipes = _serving_parts(settings, policies or [], transport, start=transport != "stdio")
    except Exception as exc:
        if fast is not None:  # the client hears why, from the thread that reads its initialize
            fast.refuse(_not_started(exc))
            raise
        for server in started.values():
            server.stop()
        if transport == "stdio":  # the client's initialize, if it comes, is answered with the reason
            from ..handshake import refuse_client

            refuse_client(_not_started(exc), _max_message_bytes())
        raise
    from ..serve import run, serve_run_stdio

    try:
        if transport == "stdio":
            run(serve_run_stdio, specs, settings, parts, started, fast, use_uvloop=pipes)
        else:
            from ..http_front import serve_run_http

            with cli_errors():
                run(serve_run_http, specs, settings, parts, port, token)
    except KeyboardInterrupt:
        pass
    finally:
        parts.close()
