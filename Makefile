# Bulkhead: `make run` to try it, `make test` to check it.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-gpu lint unit bench clean services scale-demo bench-scaleout

install: $(STAMP)

# torch is pinned first: that exact CPU wheel is available offline, while an
# unpinned torch pulled in by another package would fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[local,test]'
	touch $(STAMP)

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

# nginx in front of 3 `bulkhead serve` replicas on one PostgreSQL 15, Redis and
# SoftHSM2 token, and a fake model: in the foreground, Ctrl-C stops it all.
scale-demo: install services
	$(PY) -m tests.support.scale

# Throughput through nginx with 1, 2 and 3 replicas, and each fault's figures.
bench-scaleout: install services
	$(PY) bench/scaleout.py

# The whole suite, on SQLite and on a throwaway PostgreSQL 15 that the test
# fixtures start themselves (and fail, not skip, if they cannot), and on a
# throwaway SoftHSM2 token.
test: services lint
	$(BIN)/pytest -q -p no:cacheprovider --durations=15

# Opt-in, on a machine with an NVIDIA GPU (never in CI): NVML discovery against
# nvidia-smi, a pinned worker seeing only its device, the shared-tier memory cap.
# Read-only: nothing here changes MIG mode or instances.
test-gpu: install
	$(PY) -m pip install -q --disable-pip-version-check -e '.[local,test,gpu]'
	BULKHEAD_GPU_TESTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/gpu

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

clean:
	rm -rf $(VENV) .bulkhead .pytest_cache .mypy_cache .ruff_cache
