# Two commands for people: `make lab` and `make test`. Both bootstrap first (idempotent).
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PORT  ?= 8888

.PHONY: install lab test bench clean-state labs site course-times screenshots

install:
	bash provision/bootstrap.sh

lab: install
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(PORT) --no-browser --allow-root \
	  --ServerApp.root_dir=$(CURDIR) --ServerApp.default_url=/lab/tree/notebooks \
	  --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate

# tests/suite.py: the tests in parallel (TEST_WORKERS, default 4), then those marked serial alone
test: install
	$(PY) tests/suite.py $(PYTEST_ARGS)

# The crash-point chaos test for many rounds (`make test` runs 10): kill -9 the CLI, a pod's
# supervisor, its PID 1 or a CNI plugin at random moments, then `sandbox gc` must leave nothing.
# About 2-4 s a round on 2 cores; heavy: tell the others sharing the machine.
SOAK_ITERATIONS ?= 200
SOAK_SEED ?= 7
.PHONY: soak
soak: install
	SANDBOX_CHAOS_ITERATIONS=$(SOAK_ITERATIONS) SANDBOX_CHAOS_SEED=$(SOAK_SEED) \
	  $(PY) -m pytest -s --timeout 0 tests/pod/test_chaos.py $(PYTEST_ARGS)

# Rewrite every lab's student notebook from its module (sandbox/course/labs/labN.py).
labs: install
	$(PY) labs/make_labs.py

# The static course site: every notebook and lab solution executed, offline HTML (~1-2 min).
SITE ?= build/site
site: install
	$(PY) -m sandbox.viz.site $(SITE)

# The same, and rewrite the measured times (docs/course-times.json), the notebooks' headers,
# the labs' headers and the instructor guide's agendas from them.
course-times: install
	$(PY) -m sandbox.viz.site $(SITE) --times docs/course-times.json
	$(PY) -m sandbox.course.outline --write
	$(PY) labs/make_labs.py

# One screenshot per stepper for docs/course.md (docs/img/steppers/), taken by the browser test
# in JupyterLab at 1280×800 (each stepper at its last step). Needs root, like the notebooks.
screenshots: install
	@tmp=$$(mktemp -d /tmp/sbx-screenshots-XXXXXX); \
	SANDBOX_SCREENSHOTS=$$tmp $(PY) -m pytest -q tests/course/test_browser.py -k steppers; rc=$$?; \
	if [ $$rc -eq 0 ]; then mkdir -p docs/img/steppers && rm -f docs/img/steppers/*.png && \
	  for f in $$tmp/*-last-clip.png; do \
	    cp "$$f" "docs/img/steppers/$$(basename "$$f" -last-clip.png).png"; done; \
	  ls docs/img/steppers; fi; \
	rm -rf $$tmp; exit $$rc

bench: install
	$(PY) bench/run.py $(BENCH)

# Remove everything the kit made on this machine (pods, netns, links, mounts, caches).
clean-state: install
	$(VENV)/bin/sandbox reset --yes

# --- The workshop VM (docs/vm.md). Host tools: provision/packages/optional/vm-host*.txt. ---
# ARCH: the guest's architecture (amd64 or arm64; default: this machine's).
ARCH   ?= $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,amd64)
VM_BOX ?= build/vm/lab-bookworm-$(ARCH).box
.PHONY: vm-host vm-box vm-e2e

vm-host:
	bash provision/bootstrap.sh --with vm-host $(if $(filter arm64,$(ARCH)),--with vm-host-arm64)

# The ready-to-run lab box, built locally (needs root): Debian packages, the .venv, actool and the
# ACE validator, the image catalogue and JupyterLab's unit baked in, so `vagrant up` needs no network.
vm-box: vm-host
	bash provision/vm/build-box.sh --arch $(ARCH) $(VM_BOX)

# Opt-in, slow (TCG here): vagrant up with the guest offline in a private namespace, JupyterLab through
# the forwarded port, the learners' root tests and notebooks in the guest, vagrant destroy; nothing
# left behind. Not in `make test`.
vm-e2e: vm-host
	LAB_ARCH=$(ARCH) LAB_BOX_FILE=$(abspath $(VM_BOX)) bash provision/vm/e2e.sh
