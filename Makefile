# policy-bot: `make run CONFIG=path/to/config.yaml` runs the bot, `make test` runs every test.
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= $(POLICY_BOT_CONFIG)

.PHONY: run test lint unit deps system-deps kube helm kyverno bench clean

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

run: deps
	@test -n "$(CONFIG)" || { echo "usage: make run CONFIG=path/to/config.yaml (secrets from the environment)"; exit 2; }
	$(PY) -m bot --config $(CONFIG)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: deps
	$(PY) -m pytest tests/unit -q

test: deps system-deps kube helm kyverno lint
	$(PY) -m pytest

bench: deps system-deps kube
	$(PY) -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
