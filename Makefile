# iguardverify — build, demo and tests. Every target installs what it is missing first.
#   make demo   Stage 2 on real footage: annotated video, key frames, event log, verdicts
#   make test   every test (Rust unit + element tests, the Python tests, the demo)
#   make lint   cargo fmt --check and clippy -D warnings
#   make loc    the module graph and each source file's lines of code (no circle, none over 900)

SHELL := /bin/bash
.DEFAULT_GOAL := demo

CARGO ?= cargo
PLUGIN_DIR := $(CURDIR)/target/debug
export GST_PLUGIN_PATH := $(PLUGIN_DIR)
# Keep the registry of this build apart from the user's, so a stale entry never hides ours.
export GST_REGISTRY := $(CURDIR)/target/gst-registry.bin

# ONNX Runtime and the model generator live in a project-local venv (PyPI wheels). The runtime
# library is found through ORT_DYLIB_PATH; set it yourself to use another build (e.g. Jetson).
VENV := $(CURDIR)/.venv
VENV_PY := $(VENV)/bin/python
ORT_LINK := $(VENV)/ort/libonnxruntime.so
export ORT_DYLIB_PATH ?= $(ORT_LINK)
export IGUARD_PYTHON := $(VENV_PY)
PY_PACKAGES := onnxruntime onnx numpy flatbuffers

TINY_MODEL := models/tiny-action.onnx
MODELS := $(TINY_MODEL) models/tiny-action.labels.txt models/slow-action.onnx

APT_PACKAGES := pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 fonts-dejavu-core \
	python3-pil

# The synthetic demo (make demo-synthetic): a ball on black with a red object beside where the
# recorded person walks; the recorded detections trigger clips, and the tiny model (random 3-D
# convolutions plus a hand-set path that responds to red: plumbing, not a trained detector)
# scores each clip.
DEMO_PIPELINE := compositor name=mix sink_1::xpos=128 sink_1::ypos=116 \
	! video/x-raw,width=320,height=240,framerate=30/1 \
	! iguardreplay location=$(CURDIR)/tests/data/demo-detections.txt \
	! iguardverify cooldown=0 model-path=$(CURDIR)/$(TINY_MODEL) \
		labels-file=$(CURDIR)/models/tiny-action.labels.txt positive-classes=armed \
	! fakesink sync=false \
	videotestsrc num-buffers=90 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! mix. \
	videotestsrc num-buffers=90 pattern=red ! video/x-raw,width=48,height=40,framerate=30/1 ! mix.

.PHONY: deps venv models build demo demo-synthetic test test-rust test-python test-demo lint \
	loc inspect clean

# The demo on real footage (pipelines/demo.py): OpenCV's vtest.avi, OpenCV's HOG person
# detections, the verifier trained here (models/verifier), drawn by iguardoverlay.
DEMO_OUT := $(CURDIR)/demo-output
DEMO_ARGS = --video $(FOOTAGE_VIDEO) --detections $(FOOTAGE_DETECTIONS) \
	--model $(CURDIR)/models/verifier.onnx --labels $(CURDIR)/models/verifier.labels.txt

# System packages: installed only when one is missing (needs root or sudo).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "Installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) and retry"; exit 1; }

# The venv: created once, then reused (the stamp records a successful install).
$(VENV)/.stamp:
	python3 -m venv $(VENV) || { $(MAKE) deps APT_PACKAGES=python3-venv && python3 -m venv $(VENV); }
	$(VENV_PY) -m pip install -q --disable-pip-version-check $(PY_PACKAGES)
	mkdir -p $(VENV)/ort
	ln -sf "$$(ls $(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* | head -1)" $(ORT_LINK)
	touch $@

venv: $(VENV)/.stamp

models/tiny-action.onnx: models/generate.py | $(VENV)/.stamp
	$(VENV_PY) models/generate.py tiny --red-weight 12 --out $@

models/tiny-action.labels.txt: models/generate.py | $(VENV)/.stamp
	$(VENV_PY) models/generate.py labels --out $@

models/slow-action.onnx: models/generate.py | $(VENV)/.stamp
	$(VENV_PY) models/generate.py slow --out $@

models/r3d18-action.onnx: models/generate.py | $(VENV)/.stamp
	$(VENV_PY) models/generate.py r3d18 --out $@

models: $(MODELS)

build: deps venv models
	$(CARGO) build

demo: build footage models/verifier.onnx models/verifier.labels.txt
	/usr/bin/python3 pipelines/demo.py $(DEMO_ARGS) --out $(DEMO_OUT)

demo-synthetic: build
	@echo "Pipeline: gst-launch-1.0 $(DEMO_PIPELINE)" | tr -s '\t ' ' '
	@gst-launch-1.0 -m $(DEMO_PIPELINE) 2>&1 | grep -o 'iguard-verification.*' \
		| sed -e 's/([a-z0-9]*)//g' -e 's/;$$//' | tr -d '"' | awk -F', ' '{ \
			for (i = 2; i <= NF; i++) { split($$i, kv, "="); f[kv[1]] = kv[2] } \
			printf "verdict %s: %-8s score %.3f (threshold %.2f) label %-8s trigger %s %.2f, %s frames, %.1f ms, scorer %s %s\n", \
				f["request-id"], f["status"], f["score"], f["threshold"], \
				f["label"], f["trigger-label"], f["trigger-confidence"], f["frames"], \
				f["processing-ms"], f["scorer"], f["reason"] }'

test: test-rust test-python test-demo

# `testing`: the test-only parts of the library (fault scorers, thread helpers; see Cargo.toml).
test-rust: build deepstream-libs mqtt-deps footage
	$(CARGO) test --features testing

test-python: build
	/usr/bin/python3 tests/python/read_meta.py
	@# GstAnalytics in and out needs GStreamer 1.24+ and its typelib: here when this machine has
	@# them, otherwise said, and run inside the Debian 13 root by make test-debian13 (as CI does).
	@if /usr/bin/python3 -c 'import gi; gi.require_version("GstAnalytics", "1.0")' 2>/dev/null; then \
		/usr/bin/python3 tests/python/analytics_test.py; \
	else \
		echo "GstAnalytics test (tests/python/analytics_test.py): not run here (GStreamer" \
			"$$(pkg-config --modversion gstreamer-1.0), no GstAnalytics typelib); make" \
			"test-debian13 runs it inside a Debian 13 root (GStreamer 1.26)"; \
	fi
	@echo "Upstream detector test (tests/python/upstream_test.py: onnxinference ! ssdobjectdetector" \
		"! iguardverify, GStreamer 1.24+): not run by make test; make test-debian13 runs it inside" \
		"a Debian 13 root (GStreamer 1.26)"

# The demo as make demo runs it, into target/: a decodable video of every frame, one event per
# verdict, nothing pending.
test-demo: build footage models/verifier.onnx models/verifier.labels.txt
	/usr/bin/python3 tests/python/demo_test.py $(DEMO_ARGS) --out $(CURDIR)/target/demo-test

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --features testing -- -D warnings

# Checks on the source tree itself (tests/source_tree.rs, also part of test-rust), printed.
loc:
	$(CARGO) test --features testing --test source_tree -- --nocapture --test-threads=1

inspect: build
	gst-inspect-1.0 iguardverify

clean:
	$(CARGO) clean

# Long reliability runs (make test-long) and fuzzing.
include long.mk

# Benchmarks (make bench, make bench-quick).
include bench.mk

# NVIDIA's DeepStream libraries for the DeepStream tests (make deepstream-libs).
include deepstream.mk

# The remote scorer's server for tests (make triton-venv, test-triton, bench-triton).
include triton.mk

# The MQTT broker iguardpublish's tests run (make mqtt-deps).
include publish.mk

# Real footage and its person detections for the tests (make footage).
include footage.mk

# The Stage-2 verifier trained on that footage: make eval, test-verifier (part of make test).
include eval.mk

# Upstream GStreamer's ONNX person detector in front (make ssd-model; its test runs in the
# Debian 13 root).
include upstream.mk

# Debian 13 (GStreamer 1.26) in a debootstrap root: make debian13-run, make test-debian13.
include debian13.mk
