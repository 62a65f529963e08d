"""Imports every command module so that each registers its commands on the app."""

from __future__ import annotations

from . import policy_cmds  # noqa: F401
