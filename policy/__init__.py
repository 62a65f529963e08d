"""The policy engine: English policy files → compiled policies → verdicts on subjects.

It knows nothing of MCP. Importing it is cheap: models load on first use.
"""

from __future__ import annotations

import os

# Offline by default: these must be set before litellm, huggingface_hub or tldextract are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import PolicyError
    from .subject import Subject, SubjectKind
    from .verdict import Action, Outcome, Span, Tier, TierStep, Verdict

__all__ = ["Action", "Outcome", "PolicyError", "Span", "Subject", "SubjectKind", "Tier", "TierStep", "Verdict"]

_HOMES = {
    "PolicyError": "errors",
    "Subject": "subject",
    "SubjectKind": "subject",
    "Action": "verdict",
    "Outcome": "verdict",
    "Span": "verdict",
    "Tier": "verdict",
    "TierStep": "verdict",
    "Verdict": "verdict",
}


def __getattr__(name: str) -> Any:
    # Exports load on first use, so that importing a light submodule does not pull in pydantic.
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'policy' has no attribute {name!r}")
