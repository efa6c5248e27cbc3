# NVIDIA's DeepStream 9.0 libraries for the DeepStream tests (included from the Makefile).
# The wheel (Apache-2.0, about 16 MB) is unpacked into a project-local folder, never committed;
# tests find the libraries through IGUARD_DEEPSTREAM_LIB_DIR. Only libnvds_meta.so and
# libnvdsgst_meta.so load on a machine without a GPU.
#   make deepstream-libs   fetch them once (a stamp records a successful install)

DEEPSTREAM_DIR := $(CURDIR)/.deepstream
DEEPSTREAM_WHEEL := nvidia-deepstream-videodecode-cu13==9.0.2
DEEPSTREAM_LIBS := $(DEEPSTREAM_DIR)/nvidia/deepstream_videodecode/_libs
export IGUARD_DEEPSTREAM_LIB_DIR ?= $(DEEPSTREAM_LIBS)

.PHONY: deepstream-libs

$(DEEPSTREAM_DIR)/.stamp: | $(VENV)/.stamp
	rm -rf $(DEEPSTREAM_DIR)
	$(VENV_PY) -m pip install -q --disable-pip-version-check --no-deps \
		--target $(DEEPSTREAM_DIR) $(DEEPSTREAM_WHEEL)
	@test -f $(DEEPSTREAM_LIBS)/libnvds_meta.so && test -f $(DEEPSTREAM_LIBS)/libnvdsgst_meta.so \
		|| { echo "$(DEEPSTREAM_WHEEL) has no libnvds_meta.so / libnvdsgst_meta.so in $(DEEPSTREAM_LIBS)"; exit 1; }
	touch $@

deepstream-libs: $(DEEPSTREAM_DIR)/.stamp
