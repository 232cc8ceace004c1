"""The `promotion` section of the config: ladder stages, gates and the readiness wait.

`Settings.promotion` is deliberately an open model, so this module owns the validation and
is called by the composition root at start: a typo fails the boot with its key path
(`promotion.gates.1.type: ...`) instead of surfacing on the first `/policy promote`.

```yaml
promotion:
  stages:                       # in ladder order; default dev:any -> ... -> production:Enforce
    - {environment: qac, mode: Audit}
    - {environment: staging, mode: Enforce}
  gates:                        # every gate guards every step unless `to` narrows it
    - {type: min_days, days: 7}
    - {type: max_failures, max: 0}                       # in the current environment
    - {type: max_failures, max: 0, environment: staging, to: "production:Enforce"}
    - {type: ready_in_current}
  production: production        # promotions into it need a second person (default:
                                # the environment named production, else the last one)
  readiness_timeout_s: 60       # how long to wait for Kyverno's Ready condition
  readiness_poll_s: 2
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.ladder import Gate, Ladder, MaxFailures, MinDays, ReadyInCurrent, Stage
from bot.policies import Mode
from bot.settings import Settings, SettingsError

SECTION = "promotion"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _StageIn(_Strict):
    environment: str
    mode: Literal["any", "Audit", "Enforce"] = "any"


class _MinDaysIn(_Strict):
    type: Literal["min_days"]
    days: int = Field(ge=0, le=3650)
    to: str | None = None


class _MaxFailuresIn(_Strict):
    type: Literal["max_failures"]
    max: int = Field(default=0, ge=0)
    environment: str | None = None
    to: str | None = None


class _ReadyIn(_Strict):
    type: Literal["ready_in_current"]
    to: str | None = None


_GateIn = Annotated[_MinDaysIn | _MaxFailuresIn | _ReadyIn, Field(discriminator="type")]


class _PromotionIn(_Strict):
    stages: tuple[_StageIn, ...] | None = None
    gates: tuple[_GateIn, ...] | None = None
    production: str | None = None
    readiness_timeout_s: float = Field(default=60.0, gt=0, le=900)
    readiness_poll_s: float = Field(default=2.0, gt=0, le=60)


@dataclass(frozen=True)
class PromotionConfig:
    ladder: Ladder
    production: str
    """Promotions into this environment need a second person to confirm."""
    readiness_timeout_s: float = 60.0
    readiness_poll_s: float = 2.0

    def needs_second_person(self, environment: str) -> bool:
        return environment == self.production

    def is_production(self, environment: str) -> bool:
        """Demotions here wait for a confirming click (they drop production's protection)."""
        return environment == self.production


def load_promotion_config(settings: Settings) -> PromotionConfig:
    """Validate `settings.promotion`; raises `SettingsError` naming each bad key path."""
    raw: Mapping[str, Any] = settings.promotion.model_extra or {}
    try:
        parsed = _PromotionIn.model_validate(dict(raw))
    except ValidationError as err:
        raise SettingsError([_describe(e) for e in err.errors()]) from None
    environments = [e.name for e in settings.environments]
    problems: list[str] = []
    stages = _stages(parsed, environments, problems)
    gates = _gates(parsed, environments, stages, problems)
    production = parsed.production or (
        "production" if "production" in environments else environments[-1]
    )
    if production not in environments:
        problems.append(f"{SECTION}.production: {_unknown_env(production, environments)}")
    if problems:
        raise SettingsError(problems)
    return PromotionConfig(
        ladder=Ladder(stages, gates) if gates is not None else Ladder(stages),
        production=production,
        readiness_timeout_s=parsed.readiness_timeout_s,
        readiness_poll_s=parsed.readiness_poll_s,
    )


def _stages(
    parsed: _PromotionIn, environments: list[str], problems: list[str]
) -> tuple[Stage, ...]:
    if parsed.stages is None:
        return Ladder.default(environments).stages
    stages: list[Stage] = []
    for i, entry in enumerate(parsed.stages):
        path = f"{SECTION}.stages.{i}"
        if entry.environment not in environments:
            problems.append(f"{path}.environment: {_unknown_env(entry.environment, environments)}")
            continue
        stage = Stage(entry.environment, None if entry.mode == "any" else Mode(entry.mode))
        if stage in stages:
            problems.append(f"{path}: {stage.key} is listed twice")
            continue
        stages.append(stage)
    if not parsed.stages:
        problems.append(f"{SECTION}.stages: list at least one stage, or leave the key out")
    return tuple(stages)


def _gates(
    parsed: _PromotionIn,
    environments: list[str],
    stages: tuple[Stage, ...],
    problems: list[str],
) -> tuple[Gate, ...] | None:
    if parsed.gates is None:
        return None
    targets = {s.key for s in stages} | {s.environment for s in stages}
    gates: list[Gate] = []
    for i, entry in enumerate(parsed.gates):
        path = f"{SECTION}.gates.{i}"
        if entry.to is not None and entry.to not in targets:
            problems.append(
                f"{path}.to: {entry.to!r} is no stage of the ladder "
                f"(use one of: {', '.join(s.key for s in stages) or 'none'})"
            )
        if isinstance(entry, _MinDaysIn):
            gates.append(MinDays(entry.days, to=entry.to))
        elif isinstance(entry, _MaxFailuresIn):
            if entry.environment is not None and entry.environment not in environments:
                problems.append(
                    f"{path}.environment: {_unknown_env(entry.environment, environments)}"
                )
            gates.append(MaxFailures(entry.max, environment=entry.environment, to=entry.to))
        else:
            gates.append(ReadyInCurrent(to=entry.to))
    return tuple(gates)


def _unknown_env(name: str, environments: list[str]) -> str:
    return f"{name!r} is not a configured environment ({', '.join(environments)})"


def _describe(error: Any) -> str:
    loc = [str(p) for p in error.get("loc", ())]
    # Discriminated unions put the tag into the path (`gates.0.min_days.days`): drop it.
    loc = [p for p in loc if p not in ("min_days", "max_failures", "ready_in_current")]
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown key (check the spelling against the configuration reference)"
    elif error.get("type") == "union_tag_invalid":
        message = "type must be one of min_days, max_failures, ready_in_current"
    elif error.get("type") == "union_tag_not_found":
        message = "each gate needs a type: min_days, max_failures or ready_in_current"
    return ".".join([SECTION, *loc]) + f": {message}"
