"""The `promotion` config section: defaults, custom ladders and gates, key-path errors."""

from __future__ import annotations

from typing import Any

import pytest

from bot.ladder import MaxFailures, MinDays, ReadyInCurrent
from bot.promotion.config import load_promotion_config
from bot.settings import SettingsError, parse_settings

ENV = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
ENVIRONMENTS = [{"name": n} for n in ("dev", "qac", "staging", "production")]


def settings(promotion: Any = None, environments: list[dict[str, str]] | None = None) -> Any:
    doc: dict[str, Any] = {"slack": {"mode": "http"}, "environments": environments or ENVIRONMENTS}
    if promotion is not None:
        doc["promotion"] = promotion
    return parse_settings(doc, ENV)


def problems(promotion: Any, environments: list[dict[str, str]] | None = None) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_promotion_config(settings(promotion, environments))
    return caught.value.problems


def test_defaults_are_the_spec_ladder_and_gates():
    config = load_promotion_config(settings())
    assert [s.key for s in config.ladder.stages] == [
        "dev:any",
        "qac:Audit",
        "staging:Enforce",
        "production:Audit",
        "production:Enforce",
    ]
    assert config.ladder.gates == (MinDays(7), MaxFailures(0))
    assert config.production == "production" and config.needs_second_person("production")
    assert not config.needs_second_person("staging")
    assert config.readiness_timeout_s == 60.0


def test_without_an_environment_named_production_the_last_one_needs_two_people():
    config = load_promotion_config(settings(environments=[{"name": "lab"}, {"name": "live"}]))
    assert config.production == "live"
    assert config.ladder.stages == ()  # no default stage names a configured environment


def test_custom_stages_gates_and_waits():
    config = load_promotion_config(
        settings(
            {
                "stages": [
                    {"environment": "staging", "mode": "Audit"},
                    {"environment": "staging", "mode": "Enforce"},
                    {"environment": "production"},
                ],
                "gates": [
                    {"type": "min_days", "days": 3},
                    {"type": "max_failures", "max": 2, "environment": "qac", "to": "production"},
                    {"type": "ready_in_current", "to": "staging:Enforce"},
                ],
                "production": "staging",
                "readiness_timeout_s": 5,
                "readiness_poll_s": 0.5,
            }
        )
    )
    assert [s.key for s in config.ladder.stages] == [
        "staging:Audit",
        "staging:Enforce",
        "production:any",
    ]
    assert config.ladder.gates == (
        MinDays(3),
        MaxFailures(2, environment="qac", to="production"),
        ReadyInCurrent(to="staging:Enforce"),
    )
    assert config.production == "staging"
    assert (config.readiness_timeout_s, config.readiness_poll_s) == (5, 0.5)


def test_errors_name_the_key_path():
    assert problems({"stages": [{"environment": "qa", "mode": "Audit"}]}) == [
        "promotion.stages.0.environment: 'qa' is not a configured environment "
        "(dev, qac, staging, production)"
    ]
    assert problems({"stages": [{"environment": "qac", "mode": "enforce"}]}) == [
        "promotion.stages.0.mode: Input should be 'any', 'Audit' or 'Enforce'"
    ]
    assert problems({"gates": [{"type": "min_days"}]}) == ["promotion.gates.0.days: Field required"]
    assert problems({"gates": [{"type": "max_days", "days": 3}]}) == [
        "promotion.gates.0: type must be one of min_days, max_failures, ready_in_current"
    ]
    assert problems({"gates": [{"days": 3}]}) == [
        "promotion.gates.0: each gate needs a type: min_days, max_failures or ready_in_current"
    ]
    assert problems({"gates": [{"type": "min_days", "days": -1}]}) == [
        "promotion.gates.0.days: Input should be greater than or equal to 0"
    ]
    assert problems({"stagse": []}) == [
        "promotion.stagse: unknown key (check the spelling against the configuration reference)"
    ]
    assert problems({"readiness_timeout_s": 0}) == [
        "promotion.readiness_timeout_s: Input should be greater than 0"
    ]


def test_semantic_errors_are_collected_together():
    found = problems(
        {
            "stages": [
                {"environment": "qac", "mode": "Audit"},
                {"environment": "qac", "mode": "Audit"},
            ],
            "gates": [
                {"type": "max_failures", "environment": "prod"},
                {"type": "min_days", "days": 7, "to": "staging:Enforce"},
            ],
            "production": "prod",
        }
    )
    assert found == [
        "promotion.stages.1: qac:Audit is listed twice",
        "promotion.gates.0.environment: 'prod' is not a configured environment "
        "(dev, qac, staging, production)",
        "promotion.gates.1.to: 'staging:Enforce' is no stage of the ladder (use one of: qac:Audit)",
        "promotion.production: 'prod' is not a configured environment "
        "(dev, qac, staging, production)",
    ]
    assert problems({"stages": []}) == [
        "promotion.stages: list at least one stage, or leave the key out"
    ]
