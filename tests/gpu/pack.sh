#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Builds the bundle the GPU check carries to a CUDA 13 machine (which reaches no package
# registry; at most 64 MiB travel per call). Run here, from the repository root:
#   tests/gpu/pack.sh            -> target/gpu-bundle.tar.xz (checked to be under 64 MiB)
# Contents (bundle/ inside the tarball):
#   bin/gpu_check               examples/gpu_check.rs (the plugin statically registered in it),
#                               our crate at opt-level 3 so the CPU figures mean something
#   gst/                        Debian 12's GStreamer runtime .debs, unpacked (dpkg-deb -x)
#   ds/                         NVIDIA's DeepStream 9.0.2 libraries (PyPI
#                               nvidia-deepstream-videodecode-cu13, `make deepstream-libs`)
#   npp/                        libnppc / libnppig / libnppidei .so.13 (PyPI nvidia-npp)
# CUDA's runtime (libcudart.so.13) and the driver (libcuda.so.1) are the machine's own.
set -euo pipefail
root=$(pwd)
out=$root/target/gpu-bundle
ds=${IGUARD_DEEPSTREAM_LIB_DIR:-$root/.deepstream/nvidia/deepstream_videodecode/_libs}
[ -f "$ds/libnvbufsurface.so" ] || { echo "no DeepStream libraries in $ds: run make deepstream-libs"; exit 1; }
rm -rf "$out" && mkdir -p "$out"/{bin,gst,ds,npp,debs}

nice -n 5 cargo build --features testing --example gpu_check \
    --config 'profile.dev.package.gst-plugin-iguard.opt-level=3' \
    --config 'profile.dev.package.gst-plugin-iguard.debug-assertions=false'
strip -o "$out/bin/gpu_check" target/debug/examples/gpu_check

# GStreamer's runtime as Debian 12 ships it (what the binary was built against), with glib.
(cd "$out/debs" && apt-get download libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 \
    gstreamer1.0-plugins-base liborc-0.4-0 libglib2.0-0 libunwind8 libdw1 libelf1 libcap2)
for d in "$out"/debs/*.deb; do dpkg-deb -x "$d" "$out/gst"; done
rm -rf "$out/debs"
# Only what the check uses: the core, base (videotestsrc, videoconvert) and coreelements.
find "$out/gst" -path '*/share/*' -prune -exec rm -rf {} + 2>/dev/null || true

cp "$ds"/lib{nvds_meta,nvdsgst_meta,nvbufsurface,nvbufsurftransform,nvbuf_fdmap,nvdsbufferpool,nvdsgst_helper,gstnvvideoconvert}.so "$out/ds/"

tmp=$(mktemp -d)
pip download --no-deps --only-binary=:all: --dest "$tmp" nvidia-npp >/dev/null
(cd "$tmp" && python3 -m zipfile -e nvidia_npp-*.whl x)
for l in libnppc libnppig libnppidei; do
    find "$tmp/x" -name "$l.so.13*" -exec cp {} "$out/npp/$l.so.13" \; -quit
done
rm -rf "$tmp"
ls "$out/npp"/libnppc.so.13 "$out/npp"/libnppig.so.13 "$out/npp"/libnppidei.so.13 >/dev/null

tar -C "$root/target" -cJf "$root/target/gpu-bundle.tar.xz" gpu-bundle
size=$(stat -c %s "$root/target/gpu-bundle.tar.xz")
echo "target/gpu-bundle.tar.xz: $((size / 1024 / 1024)) MiB"
[ "$size" -lt $((64 * 1024 * 1024)) ] || { echo "over 64 MiB: split it (split -b 60M) and carry the parts over consecutive calls"; exit 1; }
