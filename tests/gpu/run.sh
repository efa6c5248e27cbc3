#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The GPU check, on a CUDA 13 machine (driver, and libcudart.so.13 from the machine's Python
# `nvidia-cuda-runtime` or CUDA_RUNTIME_DIR), from the bundle tests/gpu/pack.sh made:
#   tests/gpu/run.sh [target/gpu-bundle.tar.xz]
# Runs videotestsrc ! nvvideoconvert ! NVMM NV12 ! (real batch metas) ! iguardverify and the
# same frames through system memory; compares the tiles and prints the per-frame CPU time of
# the streaming thread for both (examples/gpu_check.rs). NVMM runs in both forms (issue 24):
# one NvBufSurfTransform call per buffer (nvmm-batch=true) and one per tile (false), with one
# person a frame and with 16 tracked people, their tiles compared with each other and their
# CPU per frame and calls per buffer printed (nvmm_transform_calls_per_buffer: N beside
# nvmm_transform_calls_per_buffer_single: N). Exit 0 = tiles agree.
# Not run yet: no session so far had a GPU machine; tests/gpu/pack.sh builds the bundle.
set -euo pipefail
bundle=${1:-target/gpu-bundle.tar.xz}
work=$(mktemp -d)
tar -C "$work" -xJf "$bundle"
b=$work/gpu-bundle
cudart=${CUDA_RUNTIME_DIR:-$(python3 -c 'import nvidia.cuda_runtime as c, os; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null || true)}
[ -n "$cudart" ] && [ -e "$cudart/libcudart.so.13" ] || { echo "libcudart.so.13 not found (set CUDA_RUNTIME_DIR)"; exit 3; }
nvidia-smi -L || true
gstlib=$b/gst/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$gstlib:$b/ds:$b/npp:$cudart${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export GST_PLUGIN_SYSTEM_PATH=$gstlib/gstreamer-1.0:$b/ds
export GST_PLUGIN_SCANNER=$gstlib/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner
export GST_REGISTRY=$work/registry.bin
export IGUARD_DEEPSTREAM_LIB_DIR=$b/ds
unset GST_PLUGIN_PATH
timeout 300 "$b/bin/gpu_check"
