# Two commands on a fresh machine: `make run` (install + start the server), `make test` (install + all tests).
SHELL := /bin/bash
PY311 ?= $(shell for p in python3.11 $$HOME/.pyenv/versions/3.11*/bin/python3.11; do $$p -c '' 2>/dev/null && { echo $$p; break; }; done)
PY312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do $$p -c '' 2>/dev/null && { echo $$p; break; }; done)
# torch==2.13.0 is the CPU wheel on this disk; any other spec makes pip pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
DIFY_VENV := .venv-dify
PIP_QUIET := -q --disable-pip-version-check

.PHONY: run test lint bench package-dify install-dify install-ragflow clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PY311)" || { echo "Python 3.11 not found: set PY311=/path/to/python3.11"; exit 1; }
	$(PY311) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) "$(TORCH_SPEC)"
	$(VENV)/bin/pip install $(PIP_QUIET) -e '.[server,onnx,dev]'
	touch $@

# The Dify plugin runs on Python 3.12 with dify-plugin 0.10.x, as Dify's daemon runs it; no torch here.
$(DIFY_VENV)/.installed: pyproject.toml dify_plugin/requirements.txt
	@test -n "$(PY312)" || { echo "Python 3.12 not found: set PY312=/path/to/python3.12"; exit 1; }
	$(PY312) -m venv $(DIFY_VENV)
	$(DIFY_VENV)/bin/pip install $(PIP_QUIET) -r dify_plugin/requirements.txt -e . pytest respx
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/rerank-kit serve

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: $(VENV)/.installed $(DIFY_VENV)/.installed lint
	$(DIFY_VENV)/bin/python -m pytest -q tests/dify_sdk
	RERANK_KIT_DIFY_PYTHON=$(abspath $(DIFY_VENV))/bin/python $(VENV)/bin/python -m pytest -q --ignore=tests/dify_sdk

# The benchmark builds its models and Infinity's own venv under benchmarks/.work on first run.
bench: $(VENV)/.installed
	$(VENV)/bin/pip install $(PIP_QUIET) -e '.[server,onnx,bench]'
	PY311=$(PY311) $(VENV)/bin/rerank-kit bench $(BENCH_ARGS)

package-dify: $(VENV)/.installed
	$(VENV)/bin/rerank-kit package-dify -o dist/

# Build the plugin and prepare Dify; DIFY_DOCKER=/path/to/dify/docker also sets it up (see docs/dify.md).
install-dify: $(VENV)/.installed
	scripts/install_dify.sh -o dist $(if $(DIFY_DOCKER),--dify-docker $(DIFY_DOCKER))

clean:
	rm -rf $(VENV) $(DIFY_VENV) dist build *.egg-info
