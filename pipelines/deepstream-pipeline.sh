#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# iguardverify in a DeepStream gst-launch pipeline: nvinfer (stage 1) detects, iguardverify
# verifies, nvdsosd draws. One camera:
#
#   nvurisrcbin ! nvstreammux batch-size=1 ! nvinfer ! nvvideoconvert ! video/x-raw,format=RGBA
#     ! iguardverify class-labels=... deepstream-version=7.1 ! nvvideoconvert
#     ! video/x-raw(memory:NVMM),format=RGBA ! nvdsosd ! sink
#
# Several cameras (one URI per argument) are batched for nvinfer, then split again with
# nvstreamdemux, one iguardverify per camera, all sharing one model and worker pool
# (model-instance-id=site):
#
#   nvurisrcbin x N ! nvstreammux batch-size=N ! nvinfer ! nvstreamdemux
#     demux.src_i ! queue ! nvvideoconvert ! video/x-raw,format=RGBA ! iguardverify ! ...  (x N)
#
# Why one frame per buffer: iguardverify reads system-memory RGBA (or NV12, I420, ...), one
# image per buffer. After nvstreammux the pixels are NVMM (NvBufSurface) batches, which the
# element cannot read; nvvideoconvert ! video/x-raw,format=RGBA copies one image to system
# memory. A batched buffer converted that way still holds one image, so with batch-size > 1
# every source's clip would be cut from that one image (the element warns once): keep
# batch-size=1 per pipeline, or demux before converting, as here. NVMM caps directly before the
# element do not link: gst-launch-1.0 reports "could not link ... neither element can handle
# caps video/x-raw(memory:NVMM)"; without a caps filter nvvideoconvert negotiates system memory
# with the element by itself.
#
# Needs: NVIDIA DeepStream on Jetson or an x86 GPU (written for 7.1: nvurisrcbin, which the
#        6.4+ SDK references document, nvstreammux, nvinfer, nvstreamdemux, nvvideoconvert,
#        nvdsosd; SRC=uridecodebin for older releases), the plugin built on that machine
#        (cargo build --release) and, for a model, ONNX Runtime (ORT_DYLIB_PATH).
# Run here: no. This machine (Debian 12, no GPU) cannot install DeepStream; without it the
#           script stops with a message naming what is missing (tests/pipelines.rs checks
#           that, and that the NVMM link error above is what gst-launch-1.0 prints). Two things
#           this pipeline relies on are to be confirmed on a device: that nvvideoconvert keeps
#           the NvDsBatchMeta on the system-memory buffers it outputs, and that nvdsosd still
#           finds it after the second nvvideoconvert.
#
# Environment: see pipelines/common.sh (GST_PLUGIN_PATH, ORT_DYLIB_PATH, IGUARD_MODEL,
# IGUARD_RAW), and
#   PGIE_CONFIG     nvinfer config (default: DeepStream's sample 4-class detector)
#   CLASS_LABELS    class id to label for that detector's metas (default for the sample
#                   detector, whose labels.txt reads car, bicycle, person, roadsign; check it)
#   DS_VERSION      the DeepStream release, for where obj_label lives (default 7.1)
#   TRIGGER_LABELS  labels that start a clip (default person)
#   IGUARD_CONFIG   an I-Guard config.yaml (step2 section) for the remaining settings
#   IGUARD_PRESET   orin-nano, orin-nx or orin-agx (worker and queue sizes)
#   SINK            the sink description (default: fakesink sync=false; on a Jetson display:
#                   nv3dsink, on x86: nveglglessink)
#   SRC             the source element per URI (default nvurisrcbin; uridecodebin works too)
#   IGUARD_DRY_RUN=1  print the gst-launch-1.0 command instead of running it (works without
#                   DeepStream)
#
# Usage: pipelines/deepstream-pipeline.sh [URI...]
#   (default URI: DeepStream's samples/streams/sample_720p.mp4)

set -euo pipefail
# shellcheck source=pipelines/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

missing=()
for element in "${SRC:-nvurisrcbin}" nvstreammux nvinfer nvvideoconvert nvdsosd nvstreamdemux; do
  gst-inspect-1.0 "$element" >/dev/null 2>&1 || missing+=("$element")
done
if [ ${#missing[@]} -gt 0 ] && [ "${IGUARD_DRY_RUN:-0}" != 1 ]; then
  echo "This example needs NVIDIA DeepStream: GStreamer elements not found: ${missing[*]}." >&2
  echo "Install DeepStream (Jetson: JetPack + deepstream package; x86: with an NVIDIA GPU)" \
    "and run it there." >&2
  exit 1
fi

DS=/opt/nvidia/deepstream/deepstream
PGIE_CONFIG=${PGIE_CONFIG:-$DS/samples/configs/deepstream-app/config_infer_primary.txt}
CLASS_LABELS=${CLASS_LABELS:-0=car,1=bicycle,2=person,3=roadsign}
DS_VERSION=${DS_VERSION:-7.1}
TRIGGER_LABELS=${TRIGGER_LABELS:-person}
read -r -a SINK <<<"${SINK:-fakesink sync=false}"
if [ $# -eq 0 ]; then
  set -- "file://$DS/samples/streams/sample_720p.mp4"
fi
N=$#

VERIFY=(iguardverify "class-labels=$CLASS_LABELS" "deepstream-version=$DS_VERSION"
  "trigger-labels=$TRIGGER_LABELS")
[ -n "${IGUARD_CONFIG:-}" ] && VERIFY+=("config-file=$IGUARD_CONFIG")
[ -n "${IGUARD_PRESET:-}" ] && VERIFY+=("preset=$IGUARD_PRESET")
VERIFY+=("${MODEL_PROPS[@]}")
TO_SYSTEM=(nvvideoconvert ! video/x-raw,format=RGBA)
TO_OSD=(nvvideoconvert ! "video/x-raw(memory:NVMM),format=RGBA" ! nvdsosd)

DESC=()
i=0
for uri in "$@"; do
  DESC+=("${SRC:-nvurisrcbin}" "uri=$uri" ! "m.sink_$i")
  i=$((i + 1))
done
DESC+=(nvstreammux name=m "batch-size=$N" width=1280 height=720 batched-push-timeout=40000
  ! nvinfer "config-file-path=$PGIE_CONFIG" "batch-size=$N")
if [ "$N" -eq 1 ]; then
  DESC+=(! "${TO_SYSTEM[@]}" ! "${VERIFY[@]}" name=v ! "${TO_OSD[@]}" ! "${SINK[@]}")
else
  DESC+=(! nvstreamdemux name=d)
  for ((i = 0; i < N; i++)); do
    DESC+=("d.src_$i" ! queue ! "${TO_SYSTEM[@]}"
      ! "${VERIFY[@]}" "name=v$i" model-instance-id=site
      ! "${TO_OSD[@]}" ! "${SINK[@]}")
  done
fi

if [ "${IGUARD_DRY_RUN:-0}" = 1 ]; then
  printf 'gst-launch-1.0 -m'
  printf ' %q' "${DESC[@]}"
  printf '\n'
  exit 0
fi
run_pipeline "${DESC[@]}"
