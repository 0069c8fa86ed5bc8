# Two commands for people: `make lab` and `make test`. Both bootstrap first (idempotent).
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PORT  ?= 8888

.PHONY: install lab test bench clean-state

install:
	bash provision/bootstrap.sh

lab: install
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(PORT) --no-browser --allow-root \
	  --ServerApp.root_dir=$(CURDIR) --ServerApp.default_url=/lab/tree/notebooks \
	  --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) bench/run.py

# Remove everything the kit made on this machine (pods, netns, links, mounts, caches).
clean-state: install
	$(VENV)/bin/sandbox reset --yes
