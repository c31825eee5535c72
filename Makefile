# peakscale: every install step lives here, so a fresh Debian machine needs only these targets.
#   make demo   backtest of the bundled World Cup 1998 trace: table + out/worldcup98-backtest.png
#   make test   installs what the tests need (Debian packages included) and runs them all
#   make bench  prints the benchmark tables (quality and speed)
#   make cluster   a local control plane in the background with the dev stack `pulumi up`-ed on it;
#                  ends with the `export KUBECONFIG=...` line (make cluster-down stops it all)
#   make binaries  builds the local control plane and the Pulumi engine from Go modules, once, into
#                  ~/.cache/peakscale (make test runs it; a cold build takes about half an hour)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
# uv from PATH, else the one pip installed as a module
UV = $$(command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
# Debian packages the test suite starts for real: redis-server checks every generated redis.conf,
# prometheus (with promtool) serves the controller its backfilled history
DEB_PACKAGES ?= redis-server prometheus

.PHONY: demo test bench types uv env env-dev debs binaries cluster cluster-down clean image

uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || \
	  $(PYTHON) -m pip install --quiet uv || $(PYTHON) -m pip install --quiet --break-system-packages uv

# the demo needs the plot extra; the tests need every extra (the stacks, the plot) and the dev tools
# --compile-bytecode: the dependencies' bytecode is written at install, so a command starts without
# compiling them (a shell with PYTHONDONTWRITEBYTECODE would otherwise compile them at every start)
env: uv
	@$(UV) sync --frozen --no-dev --extra plot --inexact --compile-bytecode --quiet

env-dev: uv
	@$(UV) sync --frozen --all-extras --compile-bytecode --quiet

debs:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, the Pulumi CLI and
# its Kubernetes provider, CloudNativePG's CRDs: built from the consumer modules under tools/, into
# a cache outside the repository; a no-op (about a second) once built
binaries: env-dev
	@command -v go >/dev/null || { echo "Go 1.26 is needed to build the control plane (it is on the project's machines)"; exit 1; }
	@tools/build.sh

# the whole thing on this machine: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok nodes, and `pulumi up` of the dev stack (the tiers, the chart, the ScalingPolicies)
cluster: env-dev binaries
	@$(UV) run --frozen --all-extras python -m tests.cluster.local up

cluster-down: env-dev
	@$(UV) run --frozen --all-extras python -m tests.cluster.local down

demo: env
	@mkdir -p out
	@$(UV) run --frozen --no-dev --extra plot peakscale backtest --plot out/worldcup98-backtest.png
	@echo "run the CLI: $(UV) run peakscale --help   (or: source .venv/bin/activate; peakscale --help)"

# lint and types first (ruff and mypy: zero findings; mypy's settings are in pyproject.toml, strict
# on the core), then the suite on both cores (it is mostly single-threaded; each worker starts its
# own Prometheus and its own control plane; a module's tests stay on one worker, so a module's
# fixture, a `pulumi up` or a parity run, is made once)
test: env-dev debs binaries
	@$(UV) run --frozen --all-extras ruff check autoscaler stacks tests bench policy
	@$(UV) run --frozen --all-extras mypy
	@$(UV) run --frozen --all-extras pytest -q -n 2 --dist loadscope

types: env-dev
	@$(UV) run --frozen --all-extras mypy

bench: env-dev
	@$(UV) run --frozen --all-extras python bench/run.py

# the controller's image, with the first container engine found (docker, then podman); IMAGE names it
IMAGE ?= peakscale:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
image:
	@engine=$$(command -v docker || command -v podman) || { echo "make image: no container engine (docker or podman) on this machine; install one, or build the Dockerfile where one is" >&2; exit 2; }; \
	echo "building $(IMAGE) with $$engine"; $$engine build -t $(IMAGE) .

clean:
	rm -rf out .pytest_cache .hypothesis
