# Two commands from a fresh clone:  `make train`  and  `make test`.
# Both create .venv on first use (pinned versions from constraints.txt) and reuse it after.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
# pytest-xdist workers: auto = one per core (PYTEST_WORKERS=0 runs in one process)
PYTEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal

.PHONY: setup train test test-fast lint format clean find-lr

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lrlab needs Python >= 3.11, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned dependency set

train: setup  ## train the default experiment; pass overrides as ARGS="optimizer=sgd scheduler=clr"
	$(BIN)/python train.py $(ARGS)

test: setup  ## the whole test suite, slow end-to-end tests included (what CI runs)
	$(PYTEST) -m "" $(ARGS)

test-fast: setup  ## the fast tests only (pytest's default selection)
	$(PYTEST) $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache

find-lr: setup  ## LR range test on the default experiment; overrides as ARGS="optimizer=sgd"
	$(BIN)/python find_lr.py $(ARGS)
