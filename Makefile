# k8snb: the course's entry points. Every target is idempotent: run it again and it converges.
#
#   make handouts   build what is missing, start the lab, execute every notebook, write handouts/
#   make test       README's test command: the course proven on the lab (started if needed; Chromium
#                   installed if missing): unit tests, the course's tests with each notebook executed
#                   once, the handouts in Chromium
#   make check      everything CI proves (.ci/run calls it): make test, then the CI tier on the lab
#                   (the lab's own tests, the classroom and its hub, the wheel, Binder simulated),
#                   kind, the lab's faults, the lab beside Docker, the flat network model
#   make lab        start the offline lab cluster (builds Kubernetes from source the first time)
#   make lab-down   stop it and remove its state
#   make kind       a kind cluster named k8snb, built offline (Docker engine, node image: built here)
#   make kind-down  delete it (and stop the Docker engine k8snb started, if it did)
#   make jupyter    JupyterLab on the notebooks, pointed at the lab
#   make bench      the benchmarks (bench/RESULTS.md)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.k8snb-installed
LAB_ARGS ?=
PYTEST_ARGS ?=
LAB_KUBECONFIG = $(shell $(BIN)/k8snb lab kubeconfig)
CHROMIUM ?= /usr/bin/chromium
# JupyterLab refuses to run as root unless told; the lab's real nodes need root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: venv lab lab-down lab-status kind kind-down kind-test test check unit browser handouts jupyter bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,docs,classroom]'
	@touch $(STAMP)

lab: venv
	$(BIN)/k8snb lab up $(LAB_ARGS)

lab-down: venv
	$(BIN)/k8snb lab down

lab-status: venv
	$(BIN)/k8snb lab status

kind: venv
	$(BIN)/k8snb kind up

kind-down: venv
	$(BIN)/k8snb kind down

# The course on kind: the notebooks and the traffic tests against the kind cluster (make kind first).
KIND_KUBECONFIG = $(shell $(BIN)/k8snb kind kubeconfig)
kind-test: venv
	KUBECONFIG=$(KIND_KUBECONFIG) K8SNB_REQUIRE_REAL=1 K8SNB_REQUIRE_KIND=1 $(BIN)/python -m pytest -q -rs $(PYTEST_ARGS) \
	  tests/course/test_notebooks.py tests/course/test_traffic_real.py tests/course/test_nodeview_real.py \
	  tests/course/test_dns_real.py tests/course/test_exercises_real.py tests/course/test_doctor.py tests/kind \
	  tests/classroom/test_classroom_real.py::test_the_policy_is_measured_between_two_learners \
	  tests/classroom/test_classroom_real.py::test_a_learners_service_may_not_claim_an_external_ip \
	  tests/classroom/test_classroom_real.py::test_a_learners_pod_may_not_take_a_critical_priority \
	  tests/classroom/test_classroom_real.py::test_down_leaves_no_namespace_account_or_binding \
	  --deselect tests/course/test_notebooks.py::test_notebooks_converge_when_run_twice

unit: venv
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

# The browser tests open the handouts and JupyterLab in Debian's Chromium (Playwright drives it;
# nothing is downloaded). Installed here when missing, as root; otherwise the one line says how.
browser:
	@test -x $(CHROMIUM) || [ -n "$$K8SNB_SKIP_BROWSER" ] || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make: installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "make test: the browser tests need Chromium: sudo apt-get install chromium (or K8SNB_SKIP_BROWSER=1)" >&2; exit 2; \
	  fi; }

# README's test command: tests/unit, tests/course and tests/browser (conftest.py: the tiers), each
# notebook executed at most once (the suite counts, and fails past one), the 15 slowest tests printed.
test: lab browser
	KUBECONFIG=$(LAB_KUBECONFIG) K8SNB_MAX_NOTEBOOK_RUNS=1 $(BIN)/python -m pytest -q -rs -m "not check" \
	  --durations=15 $(PYTEST_ARGS)

# Everything CI proves, in the order .ci/check gives (it starts and stops the clusters it needs).
check: venv
	bash .ci/check

handouts: lab
	KUBECONFIG=$(LAB_KUBECONFIG) $(BIN)/k8snb handouts --output handouts

jupyter: lab
	KUBECONFIG=$(LAB_KUBECONFIG) $(BIN)/jupyter lab --notebook-dir=notebooks $(ALLOW_ROOT)

bench: lab
	KUBECONFIG=$(LAB_KUBECONFIG) $(BIN)/python bench/run.py

clean: lab-down
	rm -rf handouts $(VENV)
