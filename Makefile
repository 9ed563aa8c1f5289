# wave-proxy: `make run` serves on embedded defaults, `make test` sets up and runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LISTEN ?= 0.0.0.0:9090

.PHONY: run test bench lint layer image deps-run deps-test clean

$(BIN)/python:
	scripts/install-deps.sh run
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run-stamp: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-stamp: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

deps-run: $(VENV)/.run-stamp

deps-test: $(VENV)/.test-stamp
	scripts/install-deps.sh test

run: deps-run
	$(BIN)/wavectl serve --listen $(LISTEN)

test: deps-test
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

# The fast loop: the unit tests alone (tests/support/markers.py), nothing installed beyond the venv.
.PHONY: test-fast
test-fast: $(VENV)/.test-stamp
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

bench: deps-test
	$(BIN)/python -m bench $(BENCH_ARGS)

# The prebuilt Fusion layers (layers/README.md): LAYER_ARGS="--arch amd64 --out DIR".
layer: deps-test
	$(BIN)/wavectl layer build $(LAYER_ARGS)

# The container image (deploy/Dockerfile), its Fusion layers built into layers/out first.
image: layer
	docker build -f deploy/Dockerfile -t wave-proxy .

lint: deps-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .tools var build *.egg-info
