"""What every command shares: error handling at the CLI boundary, stderr output, settings."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "Failed",
    "cli_errors",
    "emit_json",
    "fail",
    "say",
    "settings_from",
    "setup_logging",
]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3

ConfigOption = typer.Option(
    None, "--settings", help="Settings TOML file (default: ~/.config/mcp-gateway/config.toml; env MCP_GATEWAY_CONFIG)."
)


def say(message: str = "", *, err: bool = True) -> None:
    """Human output: stderr, so stdout stays free for --json and for the protocol."""
    typer.echo(message, err=err)


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


class Failed(typer.Exit):
    """The CLI stopping on a mistake it has told the user about (`fail`); `message` is what it said."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(code)
        self.message = message


_BEFORE_FAIL: ContextVar[Callable[[str], None] | None] = ContextVar("mcp_gateway_before_fail", default=None)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    before = _BEFORE_FAIL.get()
    if before is not None:
        before(message)
    say(f"error: {message}")
    raise Failed(message, code)


@contextmanager
def before_failing(tell: Callable[[str], None]) -> Iterator[None]:
    """While inside, `fail` calls `tell(message)` before it prints the message: a client waiting on a server the
    gateway started early hears the refusal before anyone can read the error and act on it."""
    token = _BEFORE_FAIL.set(tell)
    try:
        yield
    finally:
        _BEFORE_FAIL.reset(token)


@contextmanager
def cli_errors() -> Iterator[None]:
    """The CLI boundary: known errors become a message and an exit code; nothing else is swallowed."""
    from policy.errors import (
        CompiledPolicyError,
        CompileError,
        LLMError,
        ModelLoadError,
        PolicyError,
        PolicySourceError,
    )

    from ..errors import ClientConfigError, ConfigError, GatewayError

    try:
        yield
    except (ConfigError, ClientConfigError, PolicySourceError, CompiledPolicyError) as exc:
        fail(str(exc), EXIT_USAGE)
    except (CompileError, LLMError, ModelLoadError) as exc:
        fail(str(exc), EXIT_RUNTIME)
    except (PolicyError, GatewayError) as exc:
        fail(str(exc), EXIT_RUNTIME)
    except UnicodeDecodeError as exc:
        fail(f"a file given is not UTF-8 text ({exc.reason} at byte {exc.start}); pass a text file", EXIT_USAGE)
    except IsADirectoryError as exc:
        fail(f"{exc.filename} is a directory; pass a file", EXIT_USAGE)
    except RecursionError:
        fail("the input is nested too deeply to read; pass a flatter document", EXIT_USAGE)
    except sqlite3.DatabaseError as exc:
        fail(
            f"the database cannot be read ({exc}); check that the path is the gateway's audit log or pin store, "
            "or move the damaged file aside (a new one is created)",
            EXIT_RUNTIME,
        )


def setup_logging(level: str = "WARNING") -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level, logging.WARNING),
        format="mcp-gateway %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("LiteLLM", "litellm", "httpx", "httpcore", "sentence_transformers", "presidio-analyzer"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*MCPDeprecationWarning.*")


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    from ..settings import load_settings

    with cli_errors():
        settings = load_settings(config, **overrides)
    setup_logging(settings.log_level)
    return settings
