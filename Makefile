# Two commands on a fresh machine: `make run` (install + start the server), `make test` (install + all tests).
SHELL := /bin/bash
PY311 ?= $(shell for p in python3.11 $$HOME/.pyenv/versions/3.11*/bin/python3.11; do $$p -c '' 2>/dev/null && { echo $$p; break; }; done)
PY312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do $$p -c '' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
DIFY_VENV := .venv-dify
REFERENCE_VENV := .venv-reference
PIP_QUIET := -q --disable-pip-version-check

# The locks: every transitive version the suite passed with, one per environment (README: "The lock").
LOCK := requirements/server-py311.lock
DIFY_LOCK := requirements/dify-py312.lock
INFINITY_LOCK := requirements/infinity-py311.lock
REFERENCE_LOCK := requirements/reference-py311.lock
PLUGIN_REQUIREMENTS := dify_plugin/requirements.txt
# torch==2.13.0 is the CPU wheel on this disk; any other spec makes pip pull a multi-GB CUDA build.
TORCH_CONSTRAINT := requirements/torch-cpu.txt
PIP_TOOLS := pip-tools==7.6.2
COMPILE := --quiet --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: run test test-deploy lint bench soak lock drift package-dify package-dify-offline install-dify install-ragflow clean \
	screenshots

require-py = @test -n "$(1)" || { echo "Python $(2) not found: set PY$(subst .,,$(2))=/path/to/python$(2)"; exit 1; }

# A venv is rebuilt from scratch when its lock changes, so it never keeps a version the lock dropped.
$(VENV)/.installed: $(LOCK) pyproject.toml
	$(call require-py,$(PY311),3.11)
	$(PY311) -m venv --clear $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) -r $(LOCK)
	$(VENV)/bin/pip install $(PIP_QUIET) --no-deps -e .
	touch $@

# The Dify plugin runs on Python 3.12 with dify-plugin 0.10.x, as Dify's daemon runs it; no torch here.
$(DIFY_VENV)/.installed: $(DIFY_LOCK) pyproject.toml
	$(call require-py,$(PY312),3.12)
	$(PY312) -m venv --clear $(DIFY_VENV)
	$(DIFY_VENV)/bin/pip install $(PIP_QUIET) -r $(DIFY_LOCK)
	$(DIFY_VENV)/bin/pip install $(PIP_QUIET) --no-deps -e .
	touch $@

# FlagEmbedding's layerwise and lightweight rerankers on the transformers (4.44) their model code needs: the
# tests compute those two families' reference scores here (requirements/reference.in). Never imported by the server.
$(REFERENCE_VENV)/.installed: $(REFERENCE_LOCK)
	$(call require-py,$(PY311),3.11)
	$(PY311) -m venv --clear $(REFERENCE_VENV)
	$(REFERENCE_VENV)/bin/pip install $(PIP_QUIET) -r $(REFERENCE_LOCK)
	touch $@

# $(1): the server venv, $(2): the Dify plugin venv.
define run-suite
	$(2)/bin/python -m pytest -q tests/dify_sdk
	RERANK_KIT_DIFY_PYTHON=$(abspath $(2))/bin/python RERANK_KIT_REFERENCE_PYTHON=$(abspath $(REFERENCE_VENV))/bin/python \
		$(1)/bin/python -m pytest -q --ignore=tests/dify_sdk --ignore=tests/deployment
endef

run: $(VENV)/.installed
	$(VENV)/bin/rerank-kit serve

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: $(VENV)/.installed $(DIFY_VENV)/.installed $(REFERENCE_VENV)/.installed lint
	$(call run-suite,$(VENV),$(DIFY_VENV))

# The console's pictures in README.md and docs/server.md (docs/console/*.png), taken by its browser tests.
screenshots: $(VENV)/.installed
	RERANK_KIT_SCREENSHOTS=docs/console $(VENV)/bin/python -m pytest -q tests/e2e/console

# The paths users deploy by, as CI proves them (.ci/run runs this after `make test`; root, with buildah,
# debootstrap and qemu-user from Debian): conf/Dockerfile built with buildah (chroot isolation, no Docker daemon)
# FROM a stand-in for python:3.11-slim assembled with debootstrap (no image registry is reachable here), then
# served from the image; scripts/install_server.sh into a fresh prefix. docs/server.md says what each proves.
test-deploy: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q tests/deployment

# Re-resolve every lock from pyproject.toml, dify_plugin/requirements.in and requirements/infinity.in
# (needs the package index).
# Run it after changing a dependency range, then `make test`, and commit the locks with the change.
lock: export CUSTOM_COMPILE_COMMAND = make lock
lock:
	$(call require-py,$(PY311),3.11)
	$(call require-py,$(PY312),3.12)
	test -x .venv-lock311/bin/pip-compile || { $(PY311) -m venv .venv-lock311 && .venv-lock311/bin/pip install $(PIP_QUIET) $(PIP_TOOLS); }
	test -x .venv-lock312/bin/pip-compile || { $(PY312) -m venv .venv-lock312 && .venv-lock312/bin/pip install $(PIP_QUIET) $(PIP_TOOLS); }
	.venv-lock311/bin/pip-compile $(COMPILE) --upgrade --extra server --extra bench --extra dev --extra browser \
		-c $(TORCH_CONSTRAINT) -o $(LOCK) pyproject.toml
	.venv-lock311/bin/pip-compile $(COMPILE) --upgrade -c $(TORCH_CONSTRAINT) -o $(INFINITY_LOCK) requirements/infinity.in
	.venv-lock311/bin/pip-compile $(COMPILE) -c $(TORCH_CONSTRAINT) -o $(REFERENCE_LOCK) requirements/reference.in
	.venv-lock312/bin/pip-compile $(COMPILE) --upgrade --extra dev -o $(DIFY_LOCK) pyproject.toml dify_plugin/requirements.in
	.venv-lock312/bin/pip-compile $(COMPILE) --no-annotate -c $(DIFY_LOCK) -o $(PLUGIN_REQUIREMENTS) dify_plugin/requirements.in

# The newest versions pyproject.toml allows (no lock; torch stays the CPU wheel) in scratch venvs, and the
# whole suite on them: run it weekly and before `make lock`; docs/dependencies.md says what to do on failure.
drift: $(REFERENCE_VENV)/.installed
	$(call require-py,$(PY311),3.11)
	$(call require-py,$(PY312),3.12)
	$(PY311) -m venv --clear .venv-drift
	.venv-drift/bin/pip install $(PIP_QUIET) -c $(TORCH_CONSTRAINT) --upgrade -e '.[server,bench,dev]'
	$(PY312) -m venv --clear .venv-drift-dify
	.venv-drift-dify/bin/pip install $(PIP_QUIET) --upgrade -r dify_plugin/requirements.in -e '.[dev]'
	.venv-drift/bin/pip freeze --exclude-editable > .venv-drift/resolved.txt
	@echo "drift: resolved $$(wc -l < .venv-drift/resolved.txt) packages (.venv-drift/resolved.txt); running the suite"
	.venv-drift/bin/ruff check .
	$(call run-suite,.venv-drift,.venv-drift-dify)

# The benchmark builds its models and Infinity's own venv under benchmarks/.work on first run.
bench: $(VENV)/.installed
	PY311=$(PY311) $(VENV)/bin/python -m benchmarks $(BENCH_ARGS)

# The long load/soak run behind docs/RELIABILITY.md: 64 clients x 60 s x 20 passages against a server on the
# tiny test model (the serving machinery, not the model, is under test); `make test` runs a 10 s version.
SOAK_ARGS ?= --clients 64 --seconds 60 --passages 20
soak: $(VENV)/.installed
	$(VENV)/bin/python tests/support/tiny_model.py benchmarks/.work/soak-model
	$(VENV)/bin/python -m benchmarks.soak --serve benchmarks/.work/soak-model $(SOAK_ARGS)

# Both plugins: the model provider and the workflow Rerank tool (`--model` / `--tool` build one);
# SIGN=NAME.private.pem signs them (`rerank-kit dify-keygen NAME` makes the pair; docs/dify.md).
package-dify: $(VENV)/.installed
	$(VENV)/bin/rerank-kit package-dify -o dist/ $(if $(SIGN),--sign $(SIGN))

# The same with its dependencies as wheels inside, for a Dify that reaches no package index (docs/dify.md).
package-dify-offline: $(VENV)/.installed
	$(VENV)/bin/rerank-kit package-dify --offline -o dist/ $(if $(SIGN),--sign $(SIGN))

# Build the plugin and prepare Dify; DIFY_DOCKER=/path/to/dify/docker also sets it up (see docs/dify.md).
install-dify: $(VENV)/.installed
	scripts/install_dify.sh -o dist $(if $(DIFY_DOCKER),--dify-docker $(DIFY_DOCKER)) $(if $(SIGN),--sign $(SIGN))

# Add the rerank-kit factory to a RAGFlow deployment: RAGFLOW=/path/to/ragflow/docker (see docs/ragflow.md).
install-ragflow: $(VENV)/.installed
	@test -n "$(RAGFLOW)" || { echo "set RAGFLOW=/path/to/ragflow/docker (or a RAGFlow source tree)"; exit 1; }
	$(VENV)/bin/rerank-kit install-ragflow $(RAGFLOW)

clean:
	rm -rf $(VENV) $(DIFY_VENV) $(REFERENCE_VENV) .venv-drift .venv-drift-dify .venv-lock311 .venv-lock312 dist build *.egg-info
