"""The time tests start at, and the clock they move.

Tests that pin the bot's clock start it at `suite_start()`: the real time by default (to
the minute), or the moment in `POLICY_BOT_TEST_START` (ISO 8601, e.g. `2028-02-29T23:58`
or `2027-12-31`; UTC unless it says otherwise). Every date a test expects is computed from
that start, so a suite passes on whatever calendar day it runs, and `make test-dates` runs
the time-sensitive suites at a month end, a year end, a leap day and a year ahead.

The API servers, Alertmanager and the emulators keep the real time; a test that compares
the bot's view with theirs either pins nothing (the bot reads the real clock too) or says
how the two relate.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

START_VARIABLE = "POLICY_BOT_TEST_START"


def suite_start() -> datetime:
    """The moment clock-pinning tests start at (timezone-aware, UTC)."""
    given = os.environ.get(START_VARIABLE, "").strip()
    if not given:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        moment = datetime.fromisoformat(given)
    except ValueError:
        raise ValueError(
            f"{START_VARIABLE}={given!r} is not an ISO 8601 date or time (e.g. 2028-02-29T09:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class MovableClock:
    """A clock that stands still until the test moves it; every service of the bot reads it."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta
