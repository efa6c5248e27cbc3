# The remote (Triton, KServe v2 gRPC) scorer's tests run against a real Triton Inference Server:
# PyPI nvidia-pytriton bundles one (CPU-only here) and serves the tiny ONNX model through its
# Python backend, which calls onnxruntime. Included by the main Makefile.
#   make triton-venv   the server's venv (.venv-triton), installed once
#   make test-triton   the scorer and element tests against servers they start and stop themselves
#   make bench-triton  remote vs local clips/s and latency (examples/bench_triton.rs; `make bench`
#                      and `make bench-quick` run it too), into bench-results/bench-triton.json

# Triton's Python backend stub loads Debian's libpython3.11, so the venv must come from Debian's
# interpreter (a venv from another 3.11 build fails inside the stub).
TRITON_VENV := $(CURDIR)/.venv-triton
TRITON_PY := $(TRITON_VENV)/bin/python
TRITON_SYSTEM_PY := /usr/bin/python3
TRITON_PY_PACKAGES := nvidia-pytriton==0.7.0 onnxruntime numpy
TRITON_APT_PACKAGES := python3-venv libpython3.11 openssl
export IGUARD_TRITON_PYTHON ?= $(TRITON_PY)

.PHONY: triton-venv test-triton bench-triton

$(TRITON_VENV)/.stamp:
	$(MAKE) deps APT_PACKAGES="$(TRITON_APT_PACKAGES)"
	rm -rf $(TRITON_VENV)
	$(TRITON_SYSTEM_PY) -m venv $(TRITON_VENV)
	$(TRITON_PY) -m pip install -q --disable-pip-version-check $(TRITON_PY_PACKAGES)
	touch $@

triton-venv: $(TRITON_VENV)/.stamp

# `make test` runs tests/triton.rs too: it needs the server's venv.
test-rust: triton-venv

test-triton: build triton-venv
	$(CARGO) test --test triton

bench-triton: models triton-venv
	$(CARGO) build --release --example bench_triton
	@mkdir -p $(BENCH_DIR)
	$(BENCH_ENV) $(BENCH_TRITON_BIN) --out $(BENCH_DIR)/bench-triton.json
