# mgr: set-up, tests, the demo and (later) one target per table of the paper.
# `make help` lists the targets. Everything installs into $(VENV) on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MGR    := $(BIN)/mgr
DATA   ?= ../shared/data
DEMO   ?= build/demo

.DEFAULT_GOAL := help
.PHONY: help install test demo clean

help: ## Show this help.
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create .venv with mgr, its test tools and the stand-in encoders.

# torch and torchvision go in ONE pip command, unpinned, so pip picks a matching pair.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch torchvision
	$(BIN)/pip install --quiet -e '.[test,standins]'
	touch $@

test: install ## Run the test suite (CPU only, offline, a few minutes).
	$(BIN)/python -m pytest -q

demo: install ## The whole pipeline on the generated demo catalogue; prints a Table 5.
	MGR=$(abspath $(MGR)) examples/demo.sh $(DEMO)

clean: ## Remove build outputs (keeps .venv).
	rm -rf build
