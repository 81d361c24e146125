# mgr: set-up, tests, the demo, and one target per table and figure of the paper.
# `make help` lists the targets. Everything installs into $(VENV) on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MGR    ?= $(BIN)/mgr
DATA   ?= ../shared/data
DEMO   ?= build/demo

.DEFAULT_GOAL := help
.PHONY: help install test demo clean paper table1 table2 table3 table5 fig4 fig5 fig6 table5-three table3-three

help: ## Show this help.
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  PROFILE=small|cpu|paper|tiny (configs/<profile>.toml; default small), DATA=$(DATA), CLIP_PRETRAINED=/local/ckpt"

install: $(VENV)/.installed ## Create .venv with mgr, its test tools and the stand-in encoders.

# torch and torchvision go in ONE pip command, unpinned, so pip picks a matching pair.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch torchvision
	$(BIN)/pip install --quiet -e '.[test,standins]'
	touch $@

test: install ## Run the test suite (CPU only, offline, a few minutes).
	$(BIN)/python -m pytest -q

demo: install ## The whole pipeline on the generated demo catalogue (configs/demo.toml): Tables 1 and 5.
	MGR=$(abspath $(MGR)) CONFIG=configs/demo.toml examples/demo.sh $(DEMO)

clean: ## Remove build outputs (keeps .venv).
	rm -rf build

# The paper's tables and figures: mk/paper.mk (one file target per stage output).
include mk/paper.mk
