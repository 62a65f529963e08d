"""Imports every command module so that each registers its commands on the app."""

from __future__ import annotations

from . import policy_cmds  # noqa: F401
from . import install  # noqa: F401
from . import serve_cmds  # noqa: F401
from . import test_cmds  # noqa: F401
from . import logs_cmd  # noqa: F401
from . import demo_cmd  # noqa: F401
from . import catalogue_cmds  # noqa: F401
from . import doctor_cmd  # noqa: F401
