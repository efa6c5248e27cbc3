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
