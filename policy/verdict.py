"""What the engine returns: a `Verdict` per policy, carrying its own explanation."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Action", "Outcome", "Span", "Tier", "TierStep", "Verdict"]


class Action(StrEnum):
    """What the gateway does when a policy is violated."""

    BLOCK = "block"
    MASK = "mask"
    WARN = "warn"
    AUDIT = "audit"


class Outcome(StrEnum):
    VIOLATION = "violation"
    ALLOW = "allow"


class Tier(StrEnum):
    """The cascade tier that settled a verdict."""

    RULES = "rules"
    DETECTOR = "detector"
    CLASSIFIER = "classifier"
    JUDGE = "judge"
    THRESHOLD = "threshold"  # no judge configured: the classifier's decision threshold settled it
    ON_ERROR = "on_error"  # a tier failed and the policy's on_error settled it
    DEFAULT = "default"  # no tier had anything to say


class Span(BaseModel):
    """Where in a subject the evidence is: a field path and a character range in that string."""

    model_config = ConfigDict(frozen=True)

    field: str
    start: int
    end: int
    label: str
    score: float = 1.0


class TierStep(BaseModel):
    """One tier's contribution to a verdict, as it appears in traces and the audit log."""

    model_config = ConfigDict(frozen=True)

    tier: Tier
    result: str  # "violation" | "allow" | "unsure" | "skipped" | "error"
    detail: str = ""
    score: float | None = None
    latency_ms: float = 0.0


class Verdict(BaseModel):
    """One policy's decision on one subject."""

    model_config = ConfigDict(frozen=True)

    policy: str
    outcome: Outcome
    action: Action  # the policy's action; what happens is `effective_action`
    tier: Tier
    reason: str
    score: float | None = None
    evidence: tuple[Span, ...] = ()
    nearest_exemplar: str | None = None
    nearest_similarity: float | None = None
    judge_rationale: str | None = None
    judge_model: str | None = None
    judge_cost_usd: float | None = None  # what the judge's call cost, where litellm knows the model's price
    latency_ms: float = 0.0
    cache_hit: bool = False
    trace: tuple[TierStep, ...] = Field(default_factory=tuple)

    @property
    def violated(self) -> bool:
        return self.outcome is Outcome.VIOLATION

    @property
    def effective_action(self) -> str:
        """``allow`` when the policy holds, else the policy's action."""
        return self.action.value if self.violated else "allow"
