# Debian 13 (trixie, GStreamer 1.26) in the test suite (included from the Makefile). A Debian 13
# root is made once with debootstrap from the mirror this machine's apt uses, cached under
# .cache/debian13/ (ignored by git); the plugin is built and tested inside it with this
# machine's Rust toolchain (Debian 13's rustc 1.85 is too old for gstreamer-rs 0.25), into
# target/debian13/ so it never mixes with the Debian 12 build. tests/debian13/enter.sh does the
# mounts (in a mount namespace of its own; undone on exit, error and interrupt).
#   make debian13-run CMD='gst-inspect-1.0 iguardverify'   any command inside the root, in the
#       repository, with the root's build on GST_PLUGIN_PATH and ORT_DYLIB_PATH set
#   make test-debian13   the versions seen inside, then the element, DeepStream-meta and
#       publishing tests, the GstAnalytics test, the upstream detector test and the demo test
#       inside the root
#   make test-debian13-analytics   the GstAnalytics test alone (tests/python/analytics_test.py)
#   make test-debian13-upstream   upstream's detector in front, alone (upstream.mk)
# Needs root (debootstrap, chroot, mount). Not part of make test; .ci/run runs it after make test.

D13_DIR := $(CURDIR)/.cache/debian13
D13_ROOT := $(D13_DIR)/root
D13_SUITE := trixie
# The mirror this machine's apt uses (deb822 first, then the one-line format).
D13_MIRROR ?= $(or $(shell sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
	| tr ' ' '\n' | grep -m1 '/debian/\?$$'),$(shell awk '$$1 == "deb" && $$2 ~ /\/debian\/?$$/ \
	{ print $$2; exit }' /etc/apt/sources.list 2>/dev/null),http://deb.debian.org/debian)
# Made only when the whole debootstrap run succeeded: a half-made root (interrupted run) lies
# in root.part and is thrown away by the next run.
D13_ROOT_STAMP := $(D13_ROOT)/.iguard-root-complete

# GStreamer 1.26 development and plugin packages, the Makefile's own list, the MQTT broker
# (publish.mk), footage.mk's list (the clip's decoder; OpenCV for the demo test, which reads
# frames with cv2), a compiler, git (the plugin's version string) and venv for ONNX Runtime's
# wheel.
D13_PACKAGES := $(sort $(APT_PACKAGES) $(MQTT_PACKAGES) $(FOOTAGE_APT) \
	libgstreamer-plugins-bad1.0-dev gstreamer1.0-plugins-bad gir1.2-gst-plugins-bad-1.0 \
	gcc libc6-dev git ca-certificates python3-venv)
# One stamp per package list: a changed list installs again.
D13_PACKAGES_STAMP := $(D13_ROOT)/.iguard-packages-$(shell echo $(D13_PACKAGES) | md5sum | cut -c1-12)

# ONNX Runtime inside the root: the same PyPI wheel as .venv, in a venv made by the root's
# Python 3.13 (it lives in the repository's .cache, seen at the same path inside the root).
D13_VENV := $(D13_DIR)/venv
D13_ORT_VERSION := 1.32.0
D13_PY_PACKAGES := onnxruntime==$(D13_ORT_VERSION) onnx numpy
D13_VENV_STAMP := $(D13_VENV)/.stamp

D13_TARGET := $(CURDIR)/target/debian13
D13_ENV := CARGO_TARGET_DIR=$(D13_TARGET) CARGO_TERM_COLOR=never \
	GST_PLUGIN_PATH=$(D13_TARGET)/debug GST_REGISTRY=$(D13_TARGET)/gst-registry.bin \
	ORT_DYLIB_PATH=$(D13_VENV)/ort/libonnxruntime.so IGUARD_PYTHON=$(D13_VENV)/bin/python \
	IGUARD_DEEPSTREAM_LIB_DIR=$(IGUARD_DEEPSTREAM_LIB_DIR) \
	IGUARD_FOOTAGE_VIDEO=$(IGUARD_FOOTAGE_VIDEO) IGUARD_FOOTAGE_DETECTIONS=$(IGUARD_FOOTAGE_DETECTIONS)
D13_ENTER := $(CURDIR)/tests/debian13/enter.sh $(D13_ROOT) $(CURDIR) $(D13_ENV) --
# Seconds since $$t0, for the phase timings.
D13_SINCE = $$(( $$(date +%s) - t0 ))

.PHONY: debian13-root debian13-build debian13-run test-debian13 test-debian13-demo \
	test-debian13-analytics

$(D13_ROOT_STAMP):
	@[ "$$(id -u)" = 0 ] || { echo "the Debian 13 root needs root (debootstrap, chroot, mount)"; exit 1; }
	@command -v debootstrap >/dev/null || $(MAKE) --no-print-directory deps APT_PACKAGES=debootstrap
	@# --one-file-system: never follow a mount left in a half-made root.
	rm -rf --one-file-system $(D13_DIR)/root.part $(D13_ROOT)
	mkdir -p $(D13_DIR)
	@t0=$$(date +%s); \
	unshare --mount --propagation private debootstrap --variant=minbase $(D13_SUITE) \
		$(D13_DIR)/root.part $(D13_MIRROR) >$(D13_DIR)/debootstrap.log 2>&1 \
		|| { tail -20 $(D13_DIR)/debootstrap.log; exit 1; }; \
	echo "debian13: root made from $(D13_MIRROR) in $(D13_SINCE) s"
	mv $(D13_DIR)/root.part $(D13_ROOT)
	touch $@

$(D13_PACKAGES_STAMP): $(D13_ROOT_STAMP)
	@t0=$$(date +%s); \
	$(D13_ENTER) /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; \
		dpkg --configure -a && apt-get update -qq && \
		apt-get install -y -q --no-install-recommends $(D13_PACKAGES) && apt-get clean' >$(D13_DIR)/apt.log 2>&1 \
		|| { tail -30 $(D13_DIR)/apt.log; exit 1; }; \
	echo "debian13: packages installed in $(D13_SINCE) s"
	rm -f $(D13_ROOT)/.iguard-packages-*
	touch $@

$(D13_VENV_STAMP): | $(D13_PACKAGES_STAMP)
	@t0=$$(date +%s); rm -rf $(D13_VENV); \
	$(D13_ENTER) /bin/sh -c '/usr/bin/python3 -m venv $(D13_VENV) && \
		$(D13_VENV)/bin/python -m pip install -q --disable-pip-version-check $(D13_PY_PACKAGES) && \
		mkdir -p $(D13_VENV)/ort && \
		ln -sf "$$(ls $(D13_VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* | head -1)" \
			$(D13_VENV)/ort/libonnxruntime.so' && \
	echo "debian13: ONNX Runtime venv made in $(D13_SINCE) s"
	touch $@

debian13-root: $(D13_VENV_STAMP)

debian13-build: debian13-root
	@t0=$$(date +%s); $(D13_ENTER) cargo build && echo "debian13: plugin built in $(D13_SINCE) s"

# CMD as written ($(value ...)): make would otherwise expand a `$VAR` meant for the shell inside.
debian13-run: export D13_CMD = $(value CMD)
debian13-run: debian13-build
	@[ -n "$$D13_CMD" ] || { echo "usage: make debian13-run CMD='command'"; exit 2; }
	@$(D13_ENTER) /bin/bash -c "$$D13_CMD"

# Inside the root: the library's unit tests and every test file but one, each really run (none
# of them skips: a missing model, broker or library fails the test). Among them the element
# tests (iguardverify, tracks_element, zones, incidents, iguardreplay, iguardoverlay, ...), the
# DeepStream metadata tests with NVIDIA's libraries from make deepstream-libs (deepstream,
# deepstream_element, deepstream_nvidia, deepstream_element_nvidia), the publishing tests with
# the root's mosquitto, openssl and curl (iguardpublish, publish_disk, publish_spool,
# publish_incidents) and the footage tests. Left out: triton, whose server (nvidia-pytriton
# 0.7.0, triton.mk) bundles a Python backend built for Python 3.11 (libpython3.11), which
# Debian 13 (Python 3.13) does not have; the remote scorer does not depend on GStreamer's
# version.
D13_SKIP_TESTS := triton
D13_TESTS := $(filter-out $(D13_SKIP_TESTS),$(basename $(notdir $(wildcard tests/*.rs))))
D13_CARGO_TEST := cargo test --features testing --lib $(addprefix --test ,$(D13_TESTS))

# The demo test (make test-demo's) inside the root: the demo on the real footage through the
# root's GStreamer, its WebM decoded again frame by frame. The footage and the verifier are
# made outside (footage.mk, eval.mk), like every model: the root only runs them.
D13_DEMO_TEST = t0=$$(date +%s); $(D13_ENTER) /usr/bin/python3 tests/python/demo_test.py $(DEMO_ARGS) \
	--out $(D13_TARGET)/demo-test && echo "debian13: demo test passed in $(D13_SINCE) s"
D13_TEST_INPUTS := $(MODELS) deepstream-libs footage $(VERIFIER_MODEL) $(VERIFIER_LABELS) \
	$(SSD_MODEL) $(SSD_LABELS)

# Upstream's own detector in front (upstream.mk): onnxinference ! ssdobjectdetector !
# iguardverify ! objectdetectionoverlay on 80 frames of the footage, inside the root.
UPSTREAM_ARGS = --video $(FOOTAGE_VIDEO) --model $(SSD_MODEL) --labels $(SSD_LABELS) \
	--verifier $(CURDIR)/$(VERIFIER_MODEL) --verifier-labels $(CURDIR)/$(VERIFIER_LABELS)
D13_UPSTREAM_TEST = t0=$$(date +%s); $(D13_ENTER) /usr/bin/python3 tests/python/upstream_test.py \
	$(UPSTREAM_ARGS) --out $(D13_TARGET)/upstream-test \
	&& echo "debian13: upstream detector test (tests/python/upstream_test.py) passed inside the \
	Debian 13 root in $(D13_SINCE) s"

# GstAnalytics in and out (issue 22) with GStreamer's own analytics API (PyGObject's
# GstAnalytics typelib), which Debian 12's GStreamer 1.22 does not have: only inside the root.
D13_ANALYTICS_TEST = t0=$$(date +%s); $(D13_ENTER) /usr/bin/python3 tests/python/analytics_test.py \
	&& echo "debian13: GstAnalytics test (tests/python/analytics_test.py) passed inside the \
	Debian 13 root in $(D13_SINCE) s"

test-debian13-analytics: debian13-build
	@$(D13_ANALYTICS_TEST)

# The plugin itself first (debian13-build): cargo test builds the test binaries, not the cdylib,
# and the tests that run gst-launch-1.0, the GstAnalytics test and the demo load it from
# GST_PLUGIN_PATH.
test-debian13: debian13-build $(D13_TEST_INPUTS)
	@$(D13_ENTER) /bin/sh -c 'echo "== inside the Debian 13 root: Debian $$(cat /etc/debian_version)"; \
		gst-launch-1.0 --version; python3 --version; rustc --version'
	@t0=$$(date +%s); $(D13_ENTER) $(D13_CARGO_TEST) --no-run \
		&& echo "debian13: tests built in $(D13_SINCE) s"
	@t0=$$(date +%s); $(D13_ENTER) $(D13_CARGO_TEST) \
		&& echo "debian13: unit tests and $(words $(D13_TESTS)) test files passed in $(D13_SINCE) s"
	@$(D13_ANALYTICS_TEST)
	@$(D13_UPSTREAM_TEST)
	@$(D13_DEMO_TEST)

test-debian13-demo: debian13-build $(D13_TEST_INPUTS)
	@$(D13_DEMO_TEST)
