# pspnet-course: `make lab` opens the course, `make test` proves it works.
# Both create .venv (Python 3.11, 3.12 or 3.13; 3.11 preferred) with the project installed in editable mode
# when it is missing or older than pyproject.toml or the exact pins in requirements/constraints.txt.
# TensorFlow is chosen per machine, never two builds at once:
#   macOS -> tensorflow;  Linux with an NVIDIA GPU (nvidia-smi works, or GPU=1) -> tensorflow[and-cuda];
#   Linux without one (or GPU=0) -> tensorflow-cpu.

SHELL := /bin/bash
# The first of python3.11, 3.12, 3.13 that runs (a pyenv shim may exist without its Python), else python3.
PYTHON ?= $(or $(shell for p in python3.11 python3.12 python3.13; do \
  $$p -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13)' 2>/dev/null && command -v $$p && break; done),python3)
CONSTRAINTS := requirements/constraints.txt
VENV := .venv
BIN := $(VENV)/bin
UNAME_S := $(shell uname -s)

ifeq ($(UNAME_S),Darwin)
  TF_EXTRA := macos
else ifeq ($(GPU),1)
  TF_EXTRA := gpu
else ifeq ($(GPU),0)
  TF_EXTRA := cpu
else
  TF_EXTRA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
endif

STAMP := $(VENV)/.installed-$(TF_EXTRA)
export TF_CPP_MIN_LOG_LEVEL ?= 2
PYTEST_ARGS ?=
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))

.PHONY: setup browser-deps lab test check notebooks bench lint assignments grade clean-venv help course-url dist constraints site

help:
	@echo "make lab        install if needed, then open JupyterLab on notebooks/"
	@echo "make test       install if needed, then run every test in fast mode"
	@echo "make check      the library's fast tests only (a couple of minutes), for the edit-test loop"
	@echo "make setup      the install step alone (TensorFlow build: $(TF_EXTRA); force with GPU=1 or GPU=0)"
	@echo "make notebooks  re-execute every notebook top to bottom in default mode, storing outputs"
	@echo "make bench      measure speed and learning targets; writes bench/results/"
	@echo "make assignments  generate the student versions into assignments/release/ (nbgrader)"
	@echo "make grade      autograde assignments/submitted/, write feedback HTML and grades CSV"
	@echo "make lint       ruff"
	@echo "make course-url URL=https://github.com/ORG/REPO  point the notebooks' first cell and README links at a fork"
	@echo "make dist       build the library's wheel and sdist into dist/"
	@echo "make site       build the course's web site into build/site/ from the stored notebooks (no execution)"
	@echo "make constraints  re-pin requirements/constraints.txt from .venv (after changing a requirement)"

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13), f"pspnet-course needs Python 3.11, 3.12 or 3.13, found {sys.version.split()[0]} at {sys.executable}; set PYTHON=/path/to/python3.11"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# Remove any other TensorFlow build first: tensorflow and tensorflow-cpu overwrite each other's files.
	@for other in tensorflow tensorflow-cpu; do \
	  want=$$([ "$(TF_EXTRA)" = cpu ] && echo tensorflow-cpu || echo tensorflow); \
	  if [ "$$other" != "$$want" ] && $(BIN)/python -m pip show --quiet $$other >/dev/null 2>&1; then \
	    echo "Removing $$other (switching to $$want)"; $(BIN)/python -m pip uninstall --yes --quiet $$other; fi; \
	done
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[$(TF_EXTRA),lab,dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name pspnet-course --display-name "Python 3 (pspnet-course)" >/dev/null
	@-$(MAKE) --no-print-directory browser-deps
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# Chromium for the browser tests, from Debian's package where apt-get is available and we are root.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "Could not install chromium: the browser tests will be skipped."; \
	else echo "No /usr/bin/chromium and no apt-get as root: the browser tests will be skipped."; fi

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks

NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

# Three stages, each run even when one before failed; the exit status is the last failure's:
# the library's tests on both cores (one test file per worker, so module fixtures such as the graded course are
# built once); the JupyterLab browser tests alone (a kernel starting beside a busy worker misses their timeouts);
# then nbval runs the notebooks on the synthetic city their stored outputs show, in two shards side by side,
# each in order. 07 evaluates the run 06 trains, so both are in the second shard; the shards' measured fast-mode
# times are 161 s and 131 s. (pytest-xdist's loadgroup cannot group nbval cells: it renames `_nodeid`, which
# pytest 8's nodeid no longer reads.)
NOTEBOOKS_SHARD_1 := $(filter notebooks/00_% notebooks/01_% notebooks/02_% notebooks/04_% notebooks/05_% notebooks/08_%,$(NOTEBOOKS))
NOTEBOOKS_SHARD_2 := $(filter-out $(NOTEBOOKS_SHARD_1),$(NOTEBOOKS))
NOTEBOOK_ENV := PSPNET_FAST=1 PSPNET_DATASET=synthetic
# A file per worker, handed out longest first (tests/conftest.py's LONGEST_FIRST), not by number of tests. Three
# workers on two cores: the Colab-like check holds one for its whole run while using a fifth of a core (it mostly
# waits for pip), so the other two keep both cores busy.
TEST_DIST := -n 3 --dist loadfile --no-loadscope-reorder
test: setup
	@status=0; \
	PSPNET_FAST=1 $(BIN)/python -m pytest tests $(TEST_DIST) -m "not browser" $(PYTEST_ARGS) || status=$$?; \
	PSPNET_FAST=1 $(BIN)/python -m pytest tests -m browser $(PYTEST_ARGS) || status=$$?; \
	shard_log=$$(mktemp); \
	$(NOTEBOOK_ENV) $(BIN)/python -m pytest $(NOTEBOOKS_SHARD_1) $(NBVAL) $(PYTEST_ARGS) >$$shard_log 2>&1 & shard=$$!; \
	$(NOTEBOOK_ENV) $(BIN)/python -m pytest $(NOTEBOOKS_SHARD_2) $(NBVAL) $(PYTEST_ARGS) || status=$$?; \
	wait $$shard || status=$$?; \
	echo "--- the other notebook shard: $(notdir $(NOTEBOOKS_SHARD_1))"; cat $$shard_log; rm -f $$shard_log; \
	exit $$status

# The edit-test loop: the library's fast tests only (no notebooks, browser, Colab-like install, grading or
# other slow tests), both cores.
CHECK_MARKERS := not slow and not browser and not colab and not realdata
check: setup
	PSPNET_FAST=1 $(BIN)/python -m pytest tests -q -m "$(CHECK_MARKERS)" -n 2 $(PYTEST_ARGS)

# Stored outputs always show the synthetic city (PSPNET_DATASET=synthetic): the Cityscapes licence forbids
# redistributing the real pairs or images made from them, even on a machine that has them.
# Seconds per cell in default mode: notebook 08's comparison cell trains seven networks (about 20 min on 2 cores).
NOTEBOOK_CELL_TIMEOUT := 3600
notebooks: setup
	cd notebooks && for nb in $(notdir $(NOTEBOOKS)); do \
	  echo "Executing $$nb (default mode)"; \
	  env -u PSPNET_FAST -u CITYSCAPES_PAIRS_DIR PSPNET_DATASET=synthetic ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.kernel_name=pspnet-course --ExecutePreprocessor.timeout=$(NOTEBOOK_CELL_TIMEOUT) $$nb || exit 1; \
	done

bench: setup
	$(BIN)/python -m bench

assignments: setup
	$(BIN)/python assignments/course.py release

grade: setup
	$(BIN)/python assignments/course.py grade $(GRADE_ARGS)

lint: setup
	$(BIN)/ruff check pspnet_lib tests bench tools assignments/course.py

# Point the course at a fork: the notebooks' first cell, the README's Colab/Kaggle links, pyproject's url.
# URL reaches the shell in single quotes (each ' in it escaped), and is checked before anything is installed.
QUOTED_URL = '$(subst ','\'',$(URL))'
course-url:
	@test -n $(QUOTED_URL) || { echo "usage: make course-url URL=https://github.com/ORG/REPO"; exit 2; }
	@$(PYTHON) tools/course_url.py --check $(QUOTED_URL)
	@$(MAKE) --no-print-directory setup
	$(BIN)/python tools/course_url.py $(QUOTED_URL)

# The library alone, as a wheel and an sdist in dist/ (pip install dist/pspnet_course-*.whl).
dist: setup
	rm -f dist/pspnet_course-*
	$(BIN)/python -m build --outdir dist .

# The course site (build/site/index.html): the notebooks as committed, never executed, with Colab/Kaggle links
# from the course address, the explorers' frames drawn on the synthetic city, search and the API reference.
# Sphinx warnings are errors. .github/workflows/pages.yml publishes it.
site: setup
	$(BIN)/python tools/site.py build/site

# Exact versions of everything in .venv, for reproducible installs (commit the result). The other
# TensorFlow builds (tensorflow for macOS and GPUs) get the same version as the one installed here.
constraints: setup
	@{ echo "# Exact versions for make setup (pip install -c), written by \`make constraints\` from a working .venv."; \
	  freeze=$$($(BIN)/python -m pip freeze --exclude-editable | grep -v '^#'); \
	  { echo "$$freeze"; echo "$$freeze" | sed -n "s/^tensorflow[-_]cpu==/tensorflow==/p"; } | LC_ALL=C sort -f -u; } > $(CONSTRAINTS)
	@echo "Wrote $(CONSTRAINTS): $$(grep -c '==' $(CONSTRAINTS)) pins"
	@touch $(STAMP)  # the venv is where these pins come from: no reinstall needed

clean-venv:
	rm -rf $(VENV)

# What students receive (dist/student-kit/ and its .zip): notebooks, library, released assignments; no solutions.
.PHONY: student-kit
student-kit:
	$(PYTHON) assignments/course.py kit

# An LMS download of one assignment's submissions -> assignments/submitted/<student>/<NAME>/:
#   make collect NAME=a1_dilated_convolutions DOWNLOAD=~/Downloads/a1.zip
.PHONY: collect
collect:
	$(PYTHON) assignments/course.py collect $(NAME) $(DOWNLOAD)
