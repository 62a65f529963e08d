"""Imports every command module so that each registers its commands on the app."""

from __future__ import annotations

from . import (
    catalogue_cmds,  # noqa: F401
    demo_cmd,  # noqa: F401
    doctor_cmd,  # noqa: F401
    install,  # noqa: F401
    logs_cmd,  # noqa: F401
    policy_cmds,  # noqa: F401
    serve_cmds,  # noqa: F401
    test_cmds,  # noqa: F401
)
