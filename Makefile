# k8snb: the course's entry points. Every target is idempotent: run it again and it converges.
#
#   make handouts   build what is missing, start the lab, execute every notebook, write handouts/
#   make test       start the lab if needed, run the unit and end-to-end tests against it
#   make lab        start the offline lab cluster (builds Kubernetes from source the first time)
#   make lab-down   stop it and remove its state
#   make jupyter    JupyterLab on the notebooks, pointed at the lab
#   make bench      the benchmarks (bench/RESULTS.md)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.k8snb-installed
LAB_ARGS ?=
PYTEST_ARGS ?=
LAB_KUBECONFIG = $(shell $(BIN)/k8snb lab kubeconfig)

.PHONY: venv lab lab-down lab-status test unit handouts jupyter bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,docs]'
	@touch $(STAMP)

lab: venv
	$(BIN)/k8snb lab up $(LAB_ARGS)

lab-down: venv
	$(BIN)/k8snb lab down

lab-status: venv
	$(BIN)/k8snb lab status

unit: venv
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

test: lab
	KUBECONFIG=$(LAB_KUBECONFIG) $(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

handouts: lab
	KUBECONFIG=$(LAB_KUBECONFIG) $(BIN)/k8snb handouts --output handouts

jupyter: lab
	KUBECONFIG=$(LAB_KUBECONFIG) $(BIN)/jupyter lab --notebook-dir=notebooks

bench: lab
	KUBECONFIG=$(LAB_KUBECONFIG) $(BIN)/python bench/run.py

clean: lab-down
	rm -rf handouts $(VENV)
