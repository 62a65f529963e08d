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

__all__ = ["AuditError", "ClientConfigError", "ConfigError", "DownstreamError", "GatewayError", "ProtocolError"]


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
