# archdiff: `make demo` and `make test` work on a new machine from a fresh clone:
# they create .venv and install what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-light test-zoo lint bench fixtures clean chromium mutate

$(STAMP): pyproject.toml requirements/keras-hub.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[tensorflow,test]'
	$(PY) -m pip install -q --no-deps -r requirements/keras-hub.txt
	touch $(STAMP)

install: $(STAMP)

## The main job on the shipped fixtures: diff -> transfer -> validate.
demo: $(STAMP)
	bash scripts/demo.sh

CHROMIUM ?= /usr/bin/chromium
## Headless Chromium for the browser tests (Debian's package; Playwright drives it).
chromium:
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core)

## Every test, TensorFlow and browser ones included.
test: $(STAMP) chromium
	$(PY) -m pytest -q -p no:cacheprovider -n auto --dist loadfile

## Only the tests that need no TensorFlow.
test-light: $(STAMP)
	$(PY) -m pytest -q -m "not tensorflow"

## The differential oracle over every keras.applications model (Keras 3 and tf-keras), not just CI's fixed part:
## builds into .cache/zoo/ (keyed by the Keras version; tens of GB, tens of minutes the first time).
test-zoo: $(STAMP)
	ARCHDIFF_ZOO=all $(PY) -m pytest -q -p no:cacheprovider --timeout=14400 tests/test_zoo.py tests/test_zoo_generated.py tests/test_zoo_regressions.py

## ruff (lint, import order, complexity) and mypy, as configured in pyproject.toml; CI runs it.
lint: $(STAMP)
	$(VENV)/bin/ruff check archdiff tests bench fixtures scripts examples
	$(VENV)/bin/mypy

## Speed and memory against the baselines, one run, as ratios -> bench/results.md
bench: $(STAMP)
	$(PY) -m bench.run

## Regenerate fixtures/ with real Keras 3 and tf-keras (seeded).
fixtures: $(STAMP)
	$(PY) fixtures/make_fixtures.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache bench/.cache mutants

## Mutation testing (mutmut) over the core modules, within MUTATE_BUDGET seconds (default 1200); survivors ->
## docs/mutation-report.md (see docs/mutation.md). Not part of CI. Modules: make mutate MODULES="archdiff.read.sniff"
mutate: $(STAMP)
	$(PY) scripts/mutate.py $(MODULES)
