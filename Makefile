# Single entry point. The two commands README.md promises:
#   make lab    bring up the local lab fleet and converge the site playbook on it
#   make test   lint, unit tests, the service's tests in the shipped env, every Molecule scenario
SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

VENV := .venv
# The mirror's builders, in a venv of their own: make lab builds the mirror while .venv installs Ansible.
MIRROR_VENV := .venv-mirror
PYTHON ?= python3
# Debian packages make test needs; make lab needs all but TEST_APT_PACKAGES (the docker
# scenario's engine, the service's PostgreSQL tests).
APT_PACKAGES := podman runc golang-github-containernetworking-plugin-dnsname uidmap slirp4netns mmdebstrap make git curl python3-venv docker.io postgresql
TEST_APT_PACKAGES := docker.io postgresql
LAB_APT_PACKAGES := $(filter-out $(TEST_APT_PACKAGES),$(APT_PACKAGES))
MOLECULE_SCENARIOS ?= ha docker fleet upstream
# make test runs these one after the other beside the rest (the fleet, the longest path),
# and the checks beside all but the first (lab/make-test.sh).
MOLECULE_BESIDE ?= ha docker
# Real conda's source tarballs (offline mirror build); MIRROR_SOURCE=upstream fills
# the mirror from the upstream hosts instead (a connected staging machine).
CONDA_SRC ?= $(firstword $(wildcard ../shared/conda-src /work/shared/conda-src) ../shared/conda-src)
MIRROR_SOURCE ?= offline
# The mirror build's cache (keyed on the hash of each step's inputs): machine-wide, so
# a fresh clone (CI) reuses the conda packages whose sources have not changed.
MIRROR_CACHE ?= $(HOME)/.cache/token-billing/mirror
export MIRROR_CACHE
export CONDA_SRC
UPSTREAM_ARGS ?=

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export CONTAINERS_CONF := $(CURDIR)/lab/podman/containers.conf
export LAB_ENGINE ?= podman


.PHONY: help deps deps-lab venv venv-lab venv-mirror setup image mirror locks lab lab-down lab-status lint unit app-test app-env-test molecule test bench-app bench-rollup bench-conda bench-fleet clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "ERROR: missing packages: $$missing; run 'sudo apt-get install $$missing'" >&2; exit 1; fi; \
	  echo "$@: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "$@: ok"; fi
endef

deps-lab: ## install the Debian packages make lab needs that are missing (podman, runc, mmdebstrap, ...)
	$(call apt_install,$(LAB_APT_PACKAGES))

deps: deps-lab ## install the Debian packages make test needs on top (docker.io, postgresql)
	$(call apt_install,$(TEST_APT_PACKAGES))

# --no-compile: Python compiles what it imports when it first does; compiling every module
# of the ansible package up front took two thirds of this venv's install (47 s -> 16 s).
$(VENV)/.stamp-lab: requirements-lab.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q --no-compile -r requirements-lab.txt
	touch $@

$(MIRROR_VENV)/.stamp: requirements-mirror.txt
	$(PYTHON) -m venv $(MIRROR_VENV)
	$(MIRROR_VENV)/bin/pip install -q --upgrade pip
	$(MIRROR_VENV)/bin/pip install -q --no-compile -r requirements-mirror.txt
	touch $@

$(VENV)/.stamp: $(VENV)/.stamp-lab requirements.txt requirements-mirror.txt app/pyproject.toml reporting/pyproject.toml
	$(VENV)/bin/pip install -q --no-compile -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e ./app -e ./reporting
	touch $@

venv-lab: $(VENV)/.stamp-lab ## the virtualenv make lab converges with (Ansible, Mitogen)

venv-mirror: $(MIRROR_VENV)/.stamp ## the mirror builders' virtualenv (whl2conda, py-rattler, hatch-vcs)

venv: $(VENV)/.stamp ## the whole project virtualenv from pinned requirements (make test's tools on top)

image: deps-lab ## build (or reuse) the lab host image
	@lab/image/build.sh

mirror: venv-mirror ## fill the internal mirror (conda channel with real conda, PyPI index, installers); MIRROR_SOURCE=offline|upstream
	rm -rf build/wheels app/build reporting/build && SOURCE_DATE_EPOCH=315532800 $(MIRROR_VENV)/bin/pip wheel -q --no-deps ./app ./reporting -w build/wheels
	@if [ "$(MIRROR_SOURCE)" = upstream ]; then \
	  $(MIRROR_VENV)/bin/python lab/mirror/upstream.py --out build/mirror $$(printf -- '--app-wheel %s ' build/wheels/*.whl) $(UPSTREAM_ARGS); \
	else \
	  mkdir -p "$(MIRROR_CACHE)" && flock "$(MIRROR_CACHE)/.lock" $(MIRROR_VENV)/bin/python lab/mirror/build.py --out build/mirror --cache "$(MIRROR_CACHE)" \
	    --conda-src "$(CONDA_SRC)" $$(printf -- '--app-wheel %s ' build/wheels/*.whl); \
	fi
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@315532800 -C build/mirror -cf build/mirror.tar.new .
	@if cmp -s build/mirror.tar.new build/mirror.tar; then rm build/mirror.tar.new; echo "mirror: content unchanged"; \
	else mv build/mirror.tar.new build/mirror.tar; echo "mirror: build/mirror.tar updated"; fi

locks: venv-lab mirror ## relock every envs/*.yml with real conda against the mirror (writes envs/*.lock.txt)
	$(VENV)/bin/python lab/locks.py

lab: ## bring up the lab fleet and converge playbooks/site.yml on it (prints each phase's time)
	@lab/make-lab.sh

# The lab image (mmdebstrap: mostly downloads) is built beside the venvs and the mirror (mostly
# CPU); make lab does the same, timing each phase (lab/make-lab.sh).
# The whole venv after the mirror: its editable installs and the mirror's wheels build in app/.
setup: ## what make test needs first: the lab image with the test tools, the mirror and the lab venvs, then the whole venv and every Debian package
	@LAB_IMAGE_TEST_TOOLS=1 $(MAKE) --no-print-directory -j2 image mirror venv-lab
	@$(MAKE) --no-print-directory -j2 venv deps

lab-down: venv-lab ## remove the lab fleet
	$(VENV)/bin/python lab/lab.py down

lab-status: venv-lab ## show the lab hosts
	$(VENV)/bin/python lab/lab.py status

lint: venv ## yamllint, ansible-lint (production profile), ruff
	yamllint --strict .
	ansible-lint
	ruff check app reporting lab tests roles plugins molecule
	ruff format --check app reporting

unit: deps venv ## unit tests: project plugins, mirror + real conda, reporting engine (the billing service's: app-env-test)
	pytest -q tests/unit tests/mirror reporting/report_tests

app-test: deps venv ## the billing service's tests in the project venv (SQLite and PostgreSQL); make test runs them in the shipped env
	pytest -q app/tests

app-env-test: deps venv mirror ## billing service tests inside the newest envs/token-billing-vN.yml env (real conda, from the mirror)
	$(VENV)/bin/python lab/app_env_test.py

molecule: deps venv image mirror ## every Molecule scenario, one after the other
	@export LAB_IMAGE=$$(LAB_IMAGE_TEST_TOOLS=1 LAB_ENGINE=podman $(VENV)/bin/python lab/lab.py image); passed=0; failed=0; skipped=0; \
	for s in $(MOLECULE_SCENARIOS); do \
	  if [ -x molecule/$$s/precheck ] && ! reason=$$(molecule/$$s/precheck); then \
	    echo "== molecule $$s: skipped: $$reason"; skipped=$$((skipped + 1)); continue; fi; \
	  echo "== molecule test -s $$s"; start=$$(date +%s); \
	  if lab/phase.sh run "molecule $$s" lab/run-scenario.sh $$s; then passed=$$((passed + 1)); echo "== molecule $$s: passed in $$(( $$(date +%s) - start )) s"; \
	  else failed=$$((failed + 1)); echo "== molecule $$s: FAILED"; fi; \
	done; \
	echo "molecule: $$passed passed, $$failed failed, $$skipped skipped"; [ $$failed -eq 0 ]

test: ## everything CI runs; ends with each phase's wall time (budget: 30 min on 2 cores)
	@lab/make-test.sh "$(filter $(MOLECULE_BESIDE),$(MOLECULE_SCENARIOS))" $(filter-out $(MOLECULE_BESIDE),$(MOLECULE_SCENARIOS))

bench-app: deps venv ## billing service ingest/query benchmark (prints figures, ~7 min)
	$(VENV)/bin/python app/bench/bench.py

bench-rollup: deps venv ## PostgreSQL CPU of each ingest and rollup phase, replay and live (prints figures, ~30 s)
	$(VENV)/bin/python app/bench/rollup_cost.py

bench-conda: deps venv mirror ## env build cold/warm cache, rerun of the conda roles (prints figures)
	$(VENV)/bin/python lab/bench.py conda

bench-fleet: deps venv mirror ## full lab deploy, idempotent rerun, v1 -> v2 rollout (prints figures; recreates the lab)
	$(VENV)/bin/python lab/bench.py fleet

clean: lab-down ## remove the lab fleet and build products
	rm -rf build
