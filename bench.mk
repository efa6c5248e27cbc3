# Benchmarks, included from the main Makefile (`include bench.mk`); uses its CARGO, VENV_PY,
# ORT_DYLIB_PATH and its model targets.
#   make bench         every figure, R3D-18-shaped model (under 10 min on 2 cores)
#   make bench-quick   the same figures from shorter runs, small models (under 1 min)
# The footage phase needs vtest.avi and its HOG detections (footage.mk: `make footage`).
# Figures are printed as `name: value` lines and a table, and written as JSON to BENCH_DIR.
# Both then run the remote benchmark (examples/bench_triton.rs, see triton.mk): a Triton server
# against local ONNX Runtime on the tiny model, into bench-triton.json / bench-triton-quick.json.

BENCH_DIR := $(CURDIR)/bench-results
BENCH_BIN := $(CURDIR)/target/release/examples/bench
BENCH_TRITON_BIN := $(CURDIR)/target/release/examples/bench_triton
BENCH_ARGS ?=
# The plugin is registered statically by the program: keep the debug build's copy on
# GST_PLUGIN_PATH (and the registry that lists it) away from it.
BENCH_ENV := GST_PLUGIN_PATH= GST_REGISTRY=$(CURDIR)/target/gst-registry-bench.bin \
	ORT_DYLIB_PATH=$(ORT_DYLIB_PATH)

.PHONY: bench bench-quick bench-build

bench-build:
	$(CARGO) build --release --features testing --example bench --example bench_triton

bench: models models/r3d18-action.onnx triton-venv footage bench-build
	@mkdir -p $(BENCH_DIR)
	$(BENCH_ENV) $(BENCH_BIN) --out $(BENCH_DIR)/bench.json \
		--clip-model $(CURDIR)/models/r3d18-action.onnx \
		--sync-model $(CURDIR)/models/r3d18-action.onnx $(BENCH_ARGS)
	$(BENCH_ENV) $(BENCH_TRITON_BIN) --out $(BENCH_DIR)/bench-triton.json

bench-quick: models triton-venv footage bench-build
	@mkdir -p $(BENCH_DIR)
	$(BENCH_ENV) $(BENCH_BIN) --quick --out $(BENCH_DIR)/bench-quick.json \
		--clip-model $(CURDIR)/models/tiny-action.onnx \
		--sync-model $(CURDIR)/models/slow-action.onnx $(BENCH_ARGS)
	$(BENCH_ENV) $(BENCH_TRITON_BIN) --quick --out $(BENCH_DIR)/bench-triton-quick.json
