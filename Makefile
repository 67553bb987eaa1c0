# cifake developer tasks. `make` alone lists them.
PY ?= python
DATA ?= data/cifake
ARCHIVE ?= ../shared/data/cifake-train.zip

.PHONY: help install test lint format smoke detector bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

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

detector:  ## the shipped detector end to end: fakes, train, calibrate, threshold, ship with its card; run it again to resume
	@missing=$$(for g in autoencoder vae dcgan diffusion; do [ -d fakes/train/FAKE/$$g ] || printf '%s,' $$g; done); \
	if [ -n "$$missing" ]; then $(PY) -m cifake fakes --data-dir $(DATA) --out fakes --generators "$${missing%,}"; \
	else echo "fakes/: all four generators made"; fi
	@if [ -f runs/detector/metrics.json ]; then echo "runs/detector: trained"; \
	elif [ -f runs/detector/config.yaml ]; then $(PY) -m cifake train --resume runs/detector; \
	else $(PY) -m cifake train --config configs/detector.yaml data.dir=$(DATA) --name detector; fi
	$(PY) -m cifake evaluate runs/detector --split val --calibrate
	$(PY) scripts/export_pretrained.py runs/detector --checkpoint best-calibrated.keras --generators fakes/val

bench:  ## data-loading benchmark on DATA
	$(PY) scripts/bench_data.py --data-dir $(DATA)

clean:  ## remove caches and build leftovers (keeps data/ and runs/)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
