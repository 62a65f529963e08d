"""Errors raised by the gateway.

    GatewayError
    ├── ConfigError          a settings file, an mcp.json or a client config is invalid
    ├── ClientConfigError    an IDE config file cannot be read, parsed or written safely
    ├── DownstreamError      an MCP server could not be started, crashed, or timed out
    ├── ProtocolError        a peer sent something that is not MCP
    └── AuditError           the audit log cannot be opened or written

Every message says what happened, where (file, server, client), and what to do next.
"""

from __future__ import annotations

import logging

__all__ = [
    "AuditError",
    "ClientConfigError",
    "ConfigError",
    "DownstreamError",
    "GatewayError",
    "ProtocolError",
    "failure",
    "log_failure",
    "server_stopped",
    "server_timed_out",
    "timeout_setting",
    "too_large_text",
]

# JSON-RPC error codes, here for the fast starts, which answer before the SDK is imported (tests hold the SDK's
# own three equal to these)
CONNECTION_CLOSED = -32000  # mcp_types.CONNECTION_CLOSED
REQUEST_TIMEOUT = -32001  # mcp_types.REQUEST_TIMEOUT
INTERNAL_ERROR = -32603  # mcp_types.INTERNAL_ERROR
MESSAGE_TOO_LARGE = -32042  # the gateway's own: a message over max_message_bytes
DOWNSTREAM_UNAVAILABLE = -32043  # the gateway's own: a server that cannot be reached or started


class GatewayError(Exception):
    """Base of every error the gateway raises."""


class ConfigError(GatewayError):
    """Invalid configuration."""


class ClientConfigError(GatewayError):
    """An IDE client's config file cannot be handled safely."""


class DownstreamError(GatewayError):
    """A downstream MCP server failed."""

    def told(self) -> str:
        """The message as the client reads it: said to come from the gateway, once."""
        text = str(self)
        return text if text.startswith("mcp-gateway:") else f"mcp-gateway: {text}"


class ProtocolError(GatewayError):
    """A peer broke the protocol."""


class AuditError(GatewayError):
    """The audit log failed."""


def failure(exc: BaseException) -> str:
    """What went wrong in a check, fit for a client or a log: the kind of error, never its text, which may
    quote the message being checked (a key, a value: a pydantic error lists the path it failed at)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        kinds = ", ".join(sorted({str(error["type"]) for error in exc.errors()}))
        return f"the message could not be read for checking ({kinds})"
    if isinstance(exc, RecursionError):
        return "the message is nested too deeply to check"
    return type(exc).__name__


def log_failure(log: logging.Logger, exc: BaseException, what: str, *args: object) -> None:
    """Log a failed check as `failure` describes it; its text and traceback only at DEBUG."""
    log.error(what + ": %s", *args, failure(exc))
    log.debug("the failed check's details", exc_info=exc)


def timeout_setting(method: str) -> str:
    return "init_timeout_s" if method == "initialize" else "request_timeout_s"


def server_stopped(server: str, method: str, note: str) -> str:
    """What the client reads when a server ended while it handled `method`; `note` says how it ended."""
    return (
        f"mcp-gateway: server {server!r} stopped while handling {method} ({note}); "
        "it will be restarted on the next request"
    )


def server_timed_out(server: str, method: str, seconds: float) -> str:
    """What the client reads when a server did not answer `method` in time."""
    return (
        f"mcp-gateway: server {server!r} did not answer {method} within {seconds:g} s and may be hung; "
        f"the request was cancelled (raise {timeout_setting(method)} if it is slow)"
    )


def too_large_text(size: int, limit: int, who: str) -> str:
    return (
        f"mcp-gateway: {who} sent a message of more than {size:,} bytes, over the {limit:,}-byte limit; it was "
        "dropped. Raise max_message_bytes (MCP_GATEWAY_MAX_MESSAGE_BYTES) if this is expected."
    )
