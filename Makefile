# policy-bot: `make run` starts the playground, `make run CONFIG=path/to/config.yaml` runs the bot,
# `make test` runs every test.
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= $(POLICY_BOT_CONFIG)

.PHONY: run screenshots test test-dates lint unit deps system-deps kube helm kyverno bench soak clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

deps: $(VENV)/.installed

system-deps:
	scripts/install-system-deps.sh

kube:
	tools/kubebins/build.sh >/dev/null

helm:
	tools/helmbin/build.sh >/dev/null

kyverno:
	tools/kyverno/build.sh >/dev/null

# Without CONFIG: the playground (local clusters with Kyverno, Prometheus with the chart's alert
# rule (rendered by helm), Alertmanager, emulated Slack and JIRA, the bot) and its page on
# http://127.0.0.1:8080/. With CONFIG: the bot itself.
run: deps
ifeq ($(CONFIG),)
	@$(MAKE) --no-print-directory -s system-deps kube helm kyverno
	@$(PY) -m bot playground $(PLAYGROUND_ARGS)
else
	$(PY) -m bot --config $(CONFIG)
endif

# The README's pictures of the playground, taken by its browser tests.
screenshots: deps system-deps kube helm kyverno
	POLICY_BOT_SCREENSHOTS=docs/playground $(PY) -m pytest -q -p no:cacheprovider tests/e2e/test_playground.py

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

unit: deps
	$(PY) -m pytest tests/unit -q

test: deps system-deps kube helm kyverno lint
	$(MAKE) --no-print-directory test-dates
	$(PY) -m pytest

# The suites whose tests pin the bot's clock, started at a month end, a year end, a leap
# day and a year from now (tests/timeline.py): none may depend on the day it runs.
DATED_SUITES ?= tests/e2e/test_exceptions.py tests/integration/test_store.py tests/unit/test_promotion_service.py
TEST_DATES   ?= 2027-01-31T23:58 2026-12-31T23:59 2028-02-29T09:00 $(shell date -u -d '+1 year' +%Y-%m-%dT%H:%M)
test-dates: deps
	@set -e; for start in $(TEST_DATES); do \
	  echo "== tests starting at $$start"; \
	  POLICY_BOT_TEST_START=$$start $(PY) -m pytest -q -p no:cacheprovider $(DATED_SUITES); \
	done

bench: deps system-deps kube
	$(PY) -m bench

# The chaos soak (not part of `make test`): SOAK_MINUTES (10) of every flow under injected
# faults, then the invariants; exits non-zero when one is violated. SOAK_SEED repeats a schedule.
soak: deps system-deps kube kyverno
	$(PY) -m soak

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
