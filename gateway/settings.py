"""Gateway settings: one pydantic-settings model, loaded once by the CLI and passed down.

Sources, strongest first: command-line options (passed as overrides), ``MCP_GATEWAY_*``
environment variables (``__`` nests: ``MCP_GATEWAY_JUDGE__MODEL``), a TOML file
(``--config``, ``$MCP_GATEWAY_CONFIG`` or ``~/.config/mcp-gateway/config.toml``), defaults.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from .errors import ConfigError

__all__ = ["JudgeSettings", "Settings", "default_config_path", "load_settings"]


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "mcp-gateway"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "mcp-gateway"


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "mcp-gateway" / "config.toml"


class JudgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="litellm model string, e.g. ollama_chat/qwen2.5:1.5b")
    api_base: str | None = None
    api_key: SecretStr | None = None
    mode: Literal["auto", "json_schema", "json", "tools", "md_json"] = "auto"
    timeout_s: float = Field(default=20.0, gt=0)
    max_calls_per_minute: int = Field(default=60, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MCP_GATEWAY_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    policies: list[Path] = Field(default_factory=list, description="extra policy files or directories")
    builtin_policies: bool = True
    disable: list[str] = Field(default_factory=list, description="policy ids to switch off")
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    cache_dir: Path = Field(default_factory=_cache_dir)
    audit_db: Path = Field(default_factory=lambda: _state_dir() / "audit.db")
    pins_db: Path = Field(default_factory=lambda: _state_dir() / "pins.db")
    audit: bool = True
    pins: bool = True
    request_timeout_s: float = Field(default=120.0, gt=0)
    init_timeout_s: float = Field(default=60.0, gt=0)
    # run mode: once one server has answered initialize, wait this long for the others; later ones join
    start_grace_s: float = Field(default=10.0, ge=0)
    engine_ready_timeout_s: float = Field(default=90.0, gt=0)
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    restart_backoff_s: float = Field(default=0.5, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    embed_threads: int = Field(default=1, ge=1, le=64)
    # --transport http: sessions open at once (each runs its own server processes), and how long one may idle
    http_max_sessions: int = Field(default=32, ge=1, le=10_000)
    http_session_idle_s: float = Field(default=30 * 60.0, ge=1, allow_inf_nan=False)

    @field_validator("audit_db", "pins_db")
    @classmethod
    def _a_file(cls, path: Path) -> Path:
        if str(path) in ("", ".") or path.is_dir():
            raise ValueError("give the path of a database file, not an empty value or a directory")
        return path

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings


class _EnvSettings(Settings):
    # Other tools may set MCP_GATEWAY_* variables we do not know (and MCP_GATEWAY_CONFIG names the
    # file itself): the environment is read leniently, the TOML file strictly.
    model_config = SettingsConfigDict(
        env_prefix="MCP_GATEWAY_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: settings file not found; check --settings or MCP_GATEWAY_CONFIG") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file or remove it") from exc


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif value is not None:
            merged[key] = value
    return merged


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the TOML file, the environment and `overrides` (None values are ignored)."""
    path = config or (Path(os.environ["MCP_GATEWAY_CONFIG"]) if os.environ.get("MCP_GATEWAY_CONFIG") else None)
    explicit = path is not None
    path = path or default_config_path()
    file_values = _read_toml(path) if (explicit or path.exists()) else {}
    try:
        from_env = _EnvSettings()
        env_values = from_env.model_dump(exclude_unset=True)
        values = _merge(_merge(file_values, env_values), {k: v for k, v in overrides.items() if v is not None})
        return Settings.model_validate(values)
    except SettingsError as exc:
        # a list or table setting given as a plain environment value: pydantic-settings reads those as JSON
        field = str(exc).split('field "', 1)[-1].split('"', 1)[0] if 'field "' in str(exc) else "?"
        raise ConfigError(
            f"cannot read MCP_GATEWAY_{field.upper()} from the environment: lists and tables are written as "
            "JSON there, e.g. MCP_GATEWAY_DISABLE='[\"pii\"]' or "
            "MCP_GATEWAY_JUDGE='{\"model\": \"ollama_chat/qwen2.5:7b\"}' (or use the TOML settings file)"
        ) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        source = f"{path}, " if file_values else ""
        raise ConfigError(
            f"invalid setting {where!r} ({first['msg']}); check {source}MCP_GATEWAY_* environment variables "
            "and command-line options"
        ) from exc
