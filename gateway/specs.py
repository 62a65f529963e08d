"""How to reach a server: plain values, cheap to import (the CLI builds them before loading the SDK)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Literal

from .errors import DownstreamError

__all__ = ["HTTP_TOKEN_ENV", "Limits", "ServerSpec", "StdioCommand", "resolve_command"]

HTTP_TOKEN_ENV = "MCP_GATEWAY_HTTP_TOKEN"  # noqa: S105  (a variable name) the HTTP front's token: kept from servers


@dataclass(frozen=True)
class StdioCommand:
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None

    def describe(self) -> str:
        return " ".join([self.command, *self.args])


@dataclass(frozen=True)
class Limits:
    """What a server is allowed: time to answer initialize and each request, message size, restart pace."""

    request_timeout_s: float
    init_timeout_s: float
    max_message_bytes: int
    restart_backoff_s: float = 0.5


@dataclass(frozen=True)
class ServerSpec:
    """A command (stdio) or a URL (Streamable HTTP or legacy SSE)."""

    name: str
    stdio: StdioCommand | None = None
    url: str | None = None
    transport: Literal["stdio", "http", "sse"] = "stdio"
    headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        if self.stdio is not None:
            return self.stdio.describe()
        return f"{self.url} ({self.transport})"


def resolve_command(command: str, name: str, env: dict[str, str]) -> str:
    if os.sep in command or (os.altsep and os.altsep in command):
        if not os.path.exists(command):
            raise DownstreamError(f"server {name!r}: command {command!r} does not exist; fix the path in its config")
        return command
    found = shutil.which(command, path=env.get("PATH"))
    if found is None:
        raise DownstreamError(
            f"server {name!r}: command {command!r} was not found on PATH ({env.get('PATH', '')}); install it or "
            "give its absolute path in the server's config"
        )
    return found
