# polyglot-vision: `make demo` runs the offline quickstart, `make test` the linter and the test suite.
# Both set up a local virtual environment first (.venv), pinned by constraints.txt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False

DATA   := data/polydigits
RECIPE := recipes/polydigits/quickstart.yaml
MODEL  := outputs/polydigits/quickstart

.PHONY: install fetch demo data polyobjects train test lint format space clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch
	$(PIP) install -c constraints.txt -e ".[dev,demo]"
	touch $@

# Fonts, emoji and names: pinned npm packages (src/polyglot_vision/builtin_data/assets.lock.json), fetched and
# verified once into ~/.cache/polyglot-vision/npm; everything after runs offline.
fetch: $(STAMP)
	$(BIN)/polyglot-vision fetch

$(DATA)/sources.yaml: $(STAMP) | fetch
	$(OFFLINE) $(BIN)/polyglot-vision polydigits $(DATA)

data: $(DATA)/sources.yaml

data/polyobjects/sources.yaml: $(STAMP) | fetch
	$(OFFLINE) $(BIN)/polyglot-vision polyobjects data/polyobjects

# One torch thread: on a couple of cores shared with other work, more threads spin-wait rather than compute.
polyobjects: data/polyobjects/sources.yaml
	$(OFFLINE) OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/polyglot-vision train recipes/polyobjects/quickstart.yaml

train: data
	$(OFFLINE) $(BIN)/polyglot-vision train $(RECIPE)

demo: train
	$(OFFLINE) $(BIN)/polyglot-vision predict $(MODEL) space/examples/*.png --lang fr --top-k 1
	@echo "Model: $(MODEL)   (try it: make space)"

# Two pytest workers (pytest-xdist): most tests keep one core busy.
test: lint fetch
	.ci/install-browser
	$(OFFLINE) $(BIN)/python -m pytest -n 2 tests

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts space
	$(BIN)/ruff format --check src tests scripts space

format: $(STAMP)
	$(BIN)/ruff check --fix src tests scripts space
	$(BIN)/ruff format src tests scripts space

space: $(STAMP)
	$(OFFLINE) $(BIN)/polyglot-vision demo $(MODEL) --examples space/examples

clean:
	rm -rf $(VENV) data outputs
