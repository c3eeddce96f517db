# make install: .venv with fec installed editable (idempotent); make train: quickstart;
# make test: the whole suite. Set PYTHON to pick the interpreter that creates the venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install train test test-fast bench link clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash train.sh $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) tools/benchmark.py read-fec-csv

# make link FEC=/path/to/prepared/fec  →  datasets/fec, which the catalog reads
link:
	@test -n "$(FEC)" || { echo "usage: make link FEC=/path/to/prepared/fec"; exit 2; }
	@test -d "$(FEC)" || { echo "make link: $(FEC) is not a folder"; exit 2; }
	mkdir -p datasets
	ln -sfn "$(abspath $(FEC))" datasets/fec
	@echo "datasets/fec -> $(abspath $(FEC))"

clean:
	rm -rf $(VENV) *.egg-info
