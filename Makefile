# cgraph: the two quick-start commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast setup lint format bench fuzz images clean

demo: $(STAMP)  ## set up and evaluate the lecture example
	$(BIN)/cgraph eval examples/lecture.cg --at a=-1,b=3,c=4

test: $(STAMP)  ## set up and run the whole test suite
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## the quick loop while editing: everything but the tests marked slow, on two cores
	$(BIN)/python -m pytest -m "not slow" -x -n 2

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## performance benchmarks against baselines (prints ratios)
	$(BIN)/python bench/run.py

fuzz: $(STAMP)  ## a long fuzzing run (minutes), outside CI
	CGRAPH_FUZZ_EXAMPLES=20000 $(BIN)/python -m pytest tests/test_fuzz.py -q

images: $(STAMP)  ## regenerate the README's pictures and the golden DOT files
	$(BIN)/python scripts/make_images.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
