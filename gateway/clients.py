"""The MCP clients we know: where each keeps its config files on each OS, and the shape of its entries.

This table is the one place that knows client specifics. `gateway.clientconfig` reads and edits the
files it names, `gateway.wrapping` uses each client's entry shape, and a ``doctor`` command can list
`config_locations` without touching anything.

Files and server tables (checked against each vendor's documentation where it was reachable):

- cursor: ``~/.cursor/mcp.json`` and ``<project>/.cursor/mcp.json``; ``mcpServers``.
- claude-desktop: ``claude_desktop_config.json`` in ``~/Library/Application Support/Claude`` (macOS),
  ``%APPDATA%\\Claude`` (Windows), ``$XDG_CONFIG_HOME/Claude`` (Linux); ``mcpServers``, stdio only.
- claude-code: ``~/.claude.json`` (``mcpServers`` and ``projects.<dir>.mcpServers``) and
  ``<project>/.mcp.json`` (``mcpServers``).
- vscode: ``<project>/.vscode/mcp.json`` and the user profile's ``mcp.json`` (``servers``), the user
  ``settings.json`` (``mcp.servers``); Code and Code - Insiders.
- windsurf: ``~/.codeium/windsurf/mcp_config.json``; ``mcpServers``, remote ones by ``serverUrl``.
- gemini: ``~/.gemini/settings.json`` and ``<project>/.gemini/settings.json``; ``mcpServers``,
  remote ones by ``httpUrl`` (Streamable HTTP) or ``url`` (SSE).
- codex: ``$CODEX_HOME/config.toml`` (default ``~/.codex``) and ``<project>/.codex/config.toml``;
  ``[mcp_servers.<name>]``, remote ones by ``url`` with ``http_headers``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

__all__ = [
    "CLIENTS",
    "ClientName",
    "ClientSpec",
    "ConfigFormat",
    "ConfigLocation",
    "Environment",
    "RemoteStyle",
    "Scope",
    "System",
    "all_locations",
    "config_locations",
    "spec_for_file",
]

System = Literal["linux", "darwin", "windows"]
TablePattern = tuple[str, ...]
"""A key path from the document root to a table of servers; ``*`` matches any one key."""


class ClientName(StrEnum):
    CURSOR = "cursor"
    CLAUDE_DESKTOP = "claude-desktop"
    CLAUDE_CODE = "claude-code"
    VSCODE = "vscode"
    WINDSURF = "windsurf"
    GEMINI = "gemini"
    CODEX = "codex"


class ConfigFormat(StrEnum):
    JSON = "json"
    """JSON; comments and trailing commas are tolerated on reading and kept on writing."""
    TOML = "toml"


class Scope(StrEnum):
    USER = "user"
    PROJECT = "project"
    FILE = "file"
    """A file named with ``--config``."""


@dataclass(frozen=True)
class RemoteStyle:
    """How a client spells a remote (URL) server, so that a wrapped one can be told apart and restored."""

    http_url_keys: tuple[str, ...]
    """Keys holding a Streamable HTTP URL (or a URL whose transport the client detects itself)."""
    sse_url_keys: tuple[str, ...] = ()
    """Keys that always mean the legacy SSE transport (Gemini CLI's ``url``)."""
    headers_key: str = "headers"
    type_key: str | None = None
    """Key naming the transport (``stdio``/``http``/``sse``), for clients that have one."""
    unsupported_keys: tuple[str, ...] = ()
    """Auth settings that a wrapped entry could not carry over: such entries are left alone."""


@dataclass(frozen=True)
class ClientSpec:
    name: str
    title: str
    tables: tuple[TablePattern, ...]
    remote: RemoteStyle | None
    """None: the client only starts stdio servers from this file, so URL entries are not servers."""


_MCP_SERVERS: tuple[TablePattern, ...] = (("mcpServers",),)

CLIENTS: Mapping[ClientName, ClientSpec] = {
    ClientName.CURSOR: ClientSpec(
        "cursor", "Cursor", _MCP_SERVERS, RemoteStyle(http_url_keys=("url",), type_key="type")
    ),
    ClientName.CLAUDE_DESKTOP: ClientSpec("claude-desktop", "Claude Desktop", _MCP_SERVERS, remote=None),
    ClientName.CLAUDE_CODE: ClientSpec(
        "claude-code",
        "Claude Code",
        (("mcpServers",), ("projects", "*", "mcpServers")),
        RemoteStyle(http_url_keys=("url",), type_key="type", unsupported_keys=("headersHelper", "oauth")),
    ),
    ClientName.VSCODE: ClientSpec(
        "vscode",
        "VS Code",
        (("servers",), ("mcp", "servers"), ("mcp.servers",)),
        RemoteStyle(http_url_keys=("url",), type_key="type"),
    ),
    ClientName.WINDSURF: ClientSpec(
        "windsurf", "Windsurf", _MCP_SERVERS, RemoteStyle(http_url_keys=("serverUrl", "url"), type_key="type")
    ),
    ClientName.GEMINI: ClientSpec(
        "gemini",
        "Gemini CLI",
        _MCP_SERVERS,
        RemoteStyle(
            http_url_keys=("httpUrl",),
            sse_url_keys=("url",),
            type_key="type",
            unsupported_keys=("authProviderType", "oauth"),
        ),
    ),
    ClientName.CODEX: ClientSpec(
        "codex",
        "Codex",
        (("mcp_servers",),),
        RemoteStyle(
            http_url_keys=("url",),
            headers_key="http_headers",
            unsupported_keys=("bearer_token_env_var", "env_http_headers", "bearer_token"),
        ),
    ),
}

GENERIC_JSON = ClientSpec(
    "mcp.json",
    "an mcp.json-style file",
    (("mcpServers",), ("servers",), ("mcp", "servers"), ("mcp.servers",), ("projects", "*", "mcpServers")),
    RemoteStyle(http_url_keys=("url", "serverUrl", "httpUrl"), type_key="type"),
)
"""Used for ``--config FILE`` without ``--client``: every JSON shape above, read leniently."""


@dataclass(frozen=True)
class ConfigLocation:
    """One config file of one client. The file need not exist."""

    client: ClientSpec
    scope: Scope
    path: Path
    format: ConfigFormat

    @property
    def label(self) -> str:
        return f"{self.client.title} ({self.scope.value})"


@dataclass(frozen=True)
class Environment:
    """Everything about the machine that decides where config files live; tests build their own."""

    system: System
    home: Path
    project: Path
    appdata: Path
    xdg_config_home: Path
    xdg_state_home: Path
    codex_home: Path

    @classmethod
    def from_os(cls, project: Path | None = None, environ: Mapping[str, str] | None = None) -> Environment:
        env = os.environ if environ is None else environ
        home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
        system: System = (
            "windows" if sys.platform.startswith("win") else "darwin" if sys.platform == "darwin" else "linux"
        )
        return cls(
            system=system,
            home=home,
            project=(project or Path.cwd()).absolute(),
            appdata=Path(env.get("APPDATA") or home / "AppData" / "Roaming"),
            xdg_config_home=Path(env.get("XDG_CONFIG_HOME") or home / ".config"),
            xdg_state_home=Path(env.get("XDG_STATE_HOME") or home / ".local" / "state"),
            codex_home=Path(env.get("CODEX_HOME") or home / ".codex"),
        )

    def app_config_dir(self) -> Path:
        """The per-user application data folder of desktop apps (Electron's ``appData``)."""
        if self.system == "darwin":
            return self.home / "Library" / "Application Support"
        if self.system == "windows":
            return self.appdata
        return self.xdg_config_home

    @property
    def state_dir(self) -> Path:
        """Where install records live: beside the audit log and pins (`gateway.settings`), one per user."""
        return self.xdg_state_home / "mcp-gateway"


def config_locations(name: ClientName, env: Environment) -> list[ConfigLocation]:
    """Every config file `name` reads on this machine, user files first. Existence is not checked."""
    spec = CLIENTS[name]

    def at(scope: Scope, path: Path, fmt: ConfigFormat = ConfigFormat.JSON) -> ConfigLocation:
        return ConfigLocation(spec, scope, path, fmt)

    user, project = Scope.USER, Scope.PROJECT
    match name:
        case ClientName.CURSOR:
            return [at(user, env.home / ".cursor" / "mcp.json"), at(project, env.project / ".cursor" / "mcp.json")]
        case ClientName.CLAUDE_DESKTOP:
            return [at(user, env.app_config_dir() / "Claude" / "claude_desktop_config.json")]
        case ClientName.CLAUDE_CODE:
            return [at(user, env.home / ".claude.json"), at(project, env.project / ".mcp.json")]
        case ClientName.VSCODE:
            locations = []
            for product in ("Code", "Code - Insiders"):
                user_dir = env.app_config_dir() / product / "User"
                locations += [at(user, user_dir / "mcp.json"), at(user, user_dir / "settings.json")]
            return [*locations, at(project, env.project / ".vscode" / "mcp.json")]
        case ClientName.WINDSURF:
            return [at(user, env.home / ".codeium" / "windsurf" / "mcp_config.json")]
        case ClientName.GEMINI:
            return [
                at(user, env.home / ".gemini" / "settings.json"),
                at(project, env.project / ".gemini" / "settings.json"),
            ]
        case ClientName.CODEX:
            return [
                at(user, env.codex_home / "config.toml", ConfigFormat.TOML),
                at(project, env.project / ".codex" / "config.toml", ConfigFormat.TOML),
            ]


def all_locations(env: Environment, names: tuple[ClientName, ...] = tuple(ClientName)) -> list[ConfigLocation]:
    return [location for name in names for location in config_locations(name, env)]


def spec_for_file(path: Path, client: ClientName | None = None) -> ConfigLocation:
    """A `ConfigLocation` for a file named on the command line, in `client`'s format or guessed from its name."""
    fmt = ConfigFormat.TOML if path.suffix.lower() == ".toml" else ConfigFormat.JSON
    if client is not None:
        spec = CLIENTS[client]
    else:
        spec = CLIENTS[ClientName.CODEX] if fmt is ConfigFormat.TOML else GENERIC_JSON
    return ConfigLocation(spec, Scope.FILE, path.absolute(), fmt)
