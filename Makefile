# Two entry points for a fresh machine (Python 3.11; only package registries needed):
#   make demo  — install, then run the main job on the embedded default (local Ray, sqlite MLflow, MiniLM-L6, synthetic pairs)
#   make test  — install, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo clean distclean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/decouple sweep split --smoke --task pair

# clean removes what the commands wrote (runs/: models, sweeps, the MLflow store) and keeps the virtualenv;
# distclean removes the virtualenv too (the next make reinstalls it).
clean:
	rm -rf runs

distclean: clean
	rm -rf $(VENV)
