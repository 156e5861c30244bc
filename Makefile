# Every target that needs Python makes sure .venv exists and matches pyproject.toml and
# constraints.txt first, so `make report` and `make test` are each one command on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS := embedded,containers,lab,load,bench,dev
STAMP  := $(VENV)/.installed
PYTEST_COMMON := -rs --durations=25
BACKEND ?= auto
PROFILE ?= smoke

.PHONY: venv report test test-thorough bench load lab lint lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

venv: $(STAMP)

## report: provision PostgreSQL and Redis (embedded unless RUSTOK_* URLs are set), run the
## tests and every review notebook, render reports/latest/index.html
report: $(STAMP)
	$(BIN)/rustok-ref report --backend $(BACKEND) --profile $(PROFILE)

lint: $(STAMP)
	$(BIN)/ruff check --no-cache rustok_ref tests
	$(BIN)/ruff format --no-cache --check rustok_ref tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: lint, types, import contracts, the test suite with coverage, the benchmarks once
## (disabled timing, so they cannot rot), then every notebook under nbval
test: lint
	mkdir -p reports/coverage
	$(BIN)/pytest tests --ignore=tests/benchmarks -m "not slow" $(PYTEST_COMMON) --junitxml=reports/junit.xml \
		--cov --cov-report=term:skip-covered --cov-report=json:reports/coverage/coverage.json
	$(BIN)/pytest tests/benchmarks --benchmark-disable -q -p no:randomly
	$(BIN)/pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 notebooks/ -q -p no:cacheprovider

test-thorough: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/pytest tests --ignore=tests/benchmarks $(PYTEST_COMMON) --timeout=900

## bench: the benchmarks, then the performance report of their run (rendered even when a
## benchmark failed: its row shows why), reports/bench/<run-id>/performance.html
bench: $(STAMP)
	$(BIN)/pytest tests/benchmarks $(PYTEST_COMMON) -p no:randomly --timeout=1800; status=$$?; \
	$(BIN)/python -m rustok_ref.lab.perfnotebook render reports/bench && exit $$status

load: $(STAMP)
	$(BIN)/rustok-ref load $(or $(SCENARIO),scenarios/steady_browse.yaml) --profile $(PROFILE)

lab: $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[$(EXTRAS),notebook]'
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser --allow-root notebooks/

lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 --no-header --quiet -o constraints.txt

clean:
	rm -rf $(VENV) reports/*/ reports/latest reports/junit.xml .mypy_cache .ruff_cache .pytest_cache .coverage .coverage.* .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
