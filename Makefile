# cifake developer tasks. `make` alone lists them.
PY ?= python
DATA ?= data/cifake
ARCHIVE ?= ../shared/data/cifake-train.zip

.PHONY: help install test lint format smoke bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install:  ## editable install with the dev tools (run inside a virtual environment)
	$(PY) -m pip install -e '.[dev]'

test:  ## the test suite (what CI runs)
	$(PY) -m pytest -q

lint:  ## ruff lint + format check
	ruff check . && ruff format --check .

format:  ## apply ruff's formatting and safe fixes
	ruff check --fix . && ruff format .

smoke:  ## import ARCHIVE into DATA (if needed), then train configs/smoke.yaml on 1% of it
	$(PY) -m cifake download --archive $(ARCHIVE) --data-dir $(DATA)
	$(PY) -m cifake train --config configs/smoke.yaml data.dir=$(DATA) --name smoke

bench:  ## data-loading benchmark on DATA
	$(PY) scripts/bench_data.py --data-dir $(DATA)

clean:  ## remove caches and build leftovers (keeps data/ and runs/)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
