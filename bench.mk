# Benchmarks, included from the main Makefile (`include bench.mk`); uses its CARGO, VENV_PY,
# ORT_DYLIB_PATH and its model targets.
#   make bench         every figure, R3D-18-shaped model (under 10 min on 2 cores)
#   make bench-quick   the same figures from shorter runs, small models (under 1 min)
#   make bench-publish iguardpublish alone (examples/bench_publish.rs): verdict events per
#                      second through no output, the event log, MQTT to a mosquitto it starts
#                      on loopback (make mqtt-deps), both; about 4 min
#   make bench-publish-quick  the same, fewer and shorter steps (under 1 min)
#   make bench-overlay iguardoverlay alone (examples/bench_overlay.rs): the streaming thread's
#                      cost per frame with 16 moving objects, RGBA and I420 1080p (under 1 min)

#   make bench-libyuv  the sampler against libyuv alone (bench --only libyuv; installs libyuv0):
#                      time per call and per output pixel, and the tiles' agreement, asserted
#                      (also a phase of bench and bench-quick, which fail when they disagree)
#   make bench-frame   the streaming thread per frame (examples/bench_frame.rs): allocations in
#                      steady state (no trigger, 1 and 16 objects collecting) and CPU for
#                      20,000 boxes / 20 boxes; under 1 min. BENCH_FRAME_ARGS=--trace: where
#                      the allocations come from (backtraces), no CPU figures; also a phase
#                      of bench and bench-quick (allocations_per_frame_<case> lines)
#   make bench-nvmm    NVMM input through the CPU stand-in of NVIDIA's surface libraries
#                      (examples/bench_nvmm.rs; needs make deepstream-libs and cc):
#                      NvBufSurfTransform calls per buffer (nvmm_transform_calls_per_buffer,
#                      one call per buffer against one per tile) and the streaming thread's CPU
#                      per buffer for both forms, 4 sources x 4 people and 1-64 people; also a
#                      phase of bench and bench-quick, into bench-nvmm.json /
#                      bench-nvmm-quick.json
# The footage phase needs vtest.avi and its HOG detections (footage.mk: `make footage`).
# Figures are printed as `name: value` lines and a table, and written as JSON to BENCH_DIR.
# Both then run the remote benchmark (examples/bench_triton.rs, see triton.mk): a Triton server
# against local ONNX Runtime on the tiny model, into bench-triton.json / bench-triton-quick.json,
# and the publishing benchmark, into bench-publish.json / bench-publish-quick.json.

BENCH_DIR := $(CURDIR)/bench-results
BENCH_BIN := $(CURDIR)/target/release/examples/bench
BENCH_TRITON_BIN := $(CURDIR)/target/release/examples/bench_triton
BENCH_PUBLISH_BIN := $(CURDIR)/target/release/examples/bench_publish
BENCH_NVMM_BIN := $(CURDIR)/target/release/examples/bench_nvmm
BENCH_FRAME_BIN := $(CURDIR)/target/release/examples/bench_frame
BENCH_ARGS ?=
# The plugin is registered statically by the program: keep the debug build's copy on
# GST_PLUGIN_PATH (and the registry that lists it) away from it.
BENCH_ENV := GST_PLUGIN_PATH= GST_REGISTRY=$(CURDIR)/target/gst-registry-bench.bin \
	ORT_DYLIB_PATH=$(ORT_DYLIB_PATH)

.PHONY: bench bench-quick bench-build bench-libyuv libyuv-deps bench-publish bench-publish-quick bench-publish-build \
	bench-overlay bench-frame bench-nvmm

bench-build:
	$(CARGO) build --release --features testing --example bench --example bench_triton \
		--example bench_publish --example bench_nvmm --example bench_frame

# libyuv is opened at run time by the benchmark only (the sampler comparison); nothing links it.
libyuv-deps:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="libyuv0"

bench-libyuv: libyuv-deps bench-build
	$(BENCH_ENV) $(BENCH_BIN) --only libyuv --out $(BENCH_DIR)/bench-libyuv.json $(BENCH_ARGS)

bench: models models/r3d18-action.onnx triton-venv footage mqtt-deps libyuv-deps deepstream-libs \
		bench-build
	@mkdir -p $(BENCH_DIR)
	$(BENCH_ENV) $(BENCH_BIN) --out $(BENCH_DIR)/bench.json \
		--clip-model $(CURDIR)/models/r3d18-action.onnx \
		--sync-model $(CURDIR)/models/r3d18-action.onnx $(BENCH_ARGS)
	$(BENCH_ENV) $(BENCH_NVMM_BIN) --out $(BENCH_DIR)/bench-nvmm.json
	$(BENCH_ENV) $(BENCH_FRAME_BIN)
	$(BENCH_ENV) $(BENCH_TRITON_BIN) --out $(BENCH_DIR)/bench-triton.json
	$(BENCH_ENV) $(BENCH_PUBLISH_BIN) --out $(BENCH_DIR)/bench-publish.json

bench-quick: models triton-venv footage mqtt-deps libyuv-deps deepstream-libs bench-build
	@mkdir -p $(BENCH_DIR)
	$(BENCH_ENV) $(BENCH_BIN) --quick --out $(BENCH_DIR)/bench-quick.json \
		--clip-model $(CURDIR)/models/tiny-action.onnx \
		--sync-model $(CURDIR)/models/slow-action.onnx $(BENCH_ARGS)
	$(BENCH_ENV) $(BENCH_NVMM_BIN) --quick --out $(BENCH_DIR)/bench-nvmm-quick.json
	$(BENCH_ENV) $(BENCH_FRAME_BIN) --quick
	$(BENCH_ENV) $(BENCH_TRITON_BIN) --quick --out $(BENCH_DIR)/bench-triton-quick.json
	$(BENCH_ENV) $(BENCH_PUBLISH_BIN) --quick --out $(BENCH_DIR)/bench-publish-quick.json

# iguardpublish alone (BENCH_PUBLISH_ARGS: more options, e.g. --rates 100,1000).
BENCH_PUBLISH_ARGS ?=
bench-publish-build:
	$(CARGO) build --release --features testing --example bench_publish

bench-publish: mqtt-deps bench-publish-build
	@mkdir -p $(BENCH_DIR)
	$(BENCH_ENV) $(BENCH_PUBLISH_BIN) --out $(BENCH_DIR)/bench-publish.json $(BENCH_PUBLISH_ARGS)

bench-publish-quick: mqtt-deps bench-publish-build
	@mkdir -p $(BENCH_DIR)
	$(BENCH_ENV) $(BENCH_PUBLISH_BIN) --quick --out $(BENCH_DIR)/bench-publish-quick.json \
		$(BENCH_PUBLISH_ARGS)

# iguardoverlay alone (BENCH_OVERLAY_ARGS: e.g. --objects 32 --width 1280 --height 720).
BENCH_OVERLAY_ARGS ?=
bench-overlay:
	$(CARGO) build --release --features testing --example bench_overlay
	@mkdir -p $(BENCH_DIR)
	$(BENCH_ENV) $(CURDIR)/target/release/examples/bench_overlay \
		--out $(BENCH_DIR)/bench-overlay.json $(BENCH_OVERLAY_ARGS)

# The streaming thread's cost per frame (BENCH_FRAME_ARGS: --quick for shorter runs).
BENCH_FRAME_ARGS ?=
bench-frame:
	$(CARGO) build --release --features testing --example bench_frame
	$(BENCH_ENV) $(BENCH_FRAME_BIN) $(BENCH_FRAME_ARGS)

# NVMM input through the stand-in (BENCH_NVMM_ARGS: e.g. --quick, --frames 100).
BENCH_NVMM_ARGS ?=
bench-nvmm: deepstream-libs
	$(CARGO) build --release --features testing --example bench_nvmm
	@mkdir -p $(BENCH_DIR)
	$(BENCH_ENV) $(BENCH_NVMM_BIN) --out $(BENCH_DIR)/bench-nvmm.json $(BENCH_NVMM_ARGS)
