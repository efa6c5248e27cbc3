#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# iguardverify in a DeepStream gst-launch pipeline: nvinfer (stage 1) detects, iguardverify
# verifies, nvdsosd draws. The direct form (the default) takes nvinfer's NVMM batches as they
# are, one element for every camera of the batch:
#
#   nvurisrcbin x N ! nvstreammux batch-size=N ! nvinfer [! nvtracker]
#     ! iguardverify class-labels=... deepstream-version=9.0 [! nvmultistreamtiler] ! nvdsosd ! sink
#
# iguardverify accepts video/x-raw(memory:NVMM) (NV12, RGBA, ...) and reads only the tiles it
# needs: each frame meta's region of surfaceList[batch_id] is cropped and scaled on the GPU
# (VIC on Jetson) by NVIDIA's NvBufSurfTransform into a small surface the element owns, then
# copied (libnvbufsurface.so / libnvbufsurftransform.so, opened at run time; without them the
# element warns, the video flows and clips are verified from their labels only). The video
# itself is never copied. Verdicts come back as DeepStream metadata too: a classifier meta on
# the tracked object (text appended to its display text, so nvdsosd shows it) and an
# IGUARD.VERDICT user meta on the frame (include/iguard_verdict_meta.h).
#
# The converter form (IGUARD_CONVERT=1) is for builds where the element should read system
# memory: nvstreamdemux splits the batch, and per camera nvvideoconvert copies the frame to
# system RGBA for one iguardverify each (all sharing one model and pool, model-instance-id=site),
# then back to NVMM for nvdsosd:
#
#   ... ! nvinfer ! nvstreamdemux
#     demux.src_i ! queue ! nvvideoconvert ! video/x-raw,format=RGBA ! iguardverify ! ...  (x N)
#
# Needs: NVIDIA DeepStream on Jetson or an x86 GPU (nvurisrcbin, as in the 6.4+ SDK references,
#        nvstreammux, nvinfer, nvdsosd, nvmultistreamtiler for N > 1, nvtracker with TRACKER,
#        nvstreamdemux and nvvideoconvert for the converter form; SRC=uridecodebin for older
#        releases), the plugin built on that machine (cargo build --release) and, for a model,
#        ONNX Runtime (ORT_DYLIB_PATH).
# Run here: no. This machine (Debian 12, no GPU) cannot install DeepStream; without it the
#           script stops with a message naming what is missing (tests/pipelines.rs checks that
#           and the descriptions it builds). The NVMM reading ran only against a CPU stand-in of
#           NVIDIA's surface libraries (tests/nvmm.rs); tests/gpu/run.sh is the check for a
#           CUDA machine (not run yet).
#
# Environment: see pipelines/common.sh (GST_PLUGIN_PATH, ORT_DYLIB_PATH, IGUARD_MODEL,
# IGUARD_RAW), and
#   PGIE_CONFIG     nvinfer config (default: DeepStream's sample 4-class detector)
#   CLASS_LABELS    class id to label for that detector's metas (default for the sample
#                   detector, whose labels.txt reads car, bicycle, person, roadsign; check it)
#   DS_VERSION      the DeepStream release, for where obj_label lives (default 9.0)
#   TRIGGER_LABELS  labels that start a clip (default person)
#   TRACKER         an nvtracker low-level library (e.g. $DS/lib/libnvds_nvmultiobjecttracker.so):
#                   adds nvtracker, so verdicts go on the tracked object as classifier metas
#   IGUARD_CONVERT=1  the converter form above instead of the direct one
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

DS=/opt/nvidia/deepstream/deepstream
PGIE_CONFIG=${PGIE_CONFIG:-$DS/samples/configs/deepstream-app/config_infer_primary.txt}
CLASS_LABELS=${CLASS_LABELS:-0=car,1=bicycle,2=person,3=roadsign}
DS_VERSION=${DS_VERSION:-9.0}
TRIGGER_LABELS=${TRIGGER_LABELS:-person}
CONVERT=${IGUARD_CONVERT:-0}
read -r -a SINK <<<"${SINK:-fakesink sync=false}"
if [ $# -eq 0 ]; then
  set -- "file://$DS/samples/streams/sample_720p.mp4"
fi
N=$#

needed=("${SRC:-nvurisrcbin}" nvstreammux nvinfer nvdsosd)
if [ "$CONVERT" = 1 ]; then
  needed+=(nvvideoconvert nvstreamdemux)
elif [ "$N" -gt 1 ]; then
  needed+=(nvmultistreamtiler)
fi
[ -n "${TRACKER:-}" ] && needed+=(nvtracker)
missing=()
for element in "${needed[@]}"; do
  gst-inspect-1.0 "$element" >/dev/null 2>&1 || missing+=("$element")
done
if [ ${#missing[@]} -gt 0 ] && [ "${IGUARD_DRY_RUN:-0}" != 1 ]; then
  echo "This example needs NVIDIA DeepStream: GStreamer elements not found: ${missing[*]}." >&2
  echo "Install DeepStream (Jetson: JetPack + deepstream package; x86: with an NVIDIA GPU)" \
    "and run it there." >&2
  exit 1
fi

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
[ -n "${TRACKER:-}" ] && DESC+=(! nvtracker "ll-lib-file=$TRACKER")
if [ "$CONVERT" != 1 ]; then
  # Direct: the NVMM batch goes through untouched; one element serves every camera.
  DESC+=(! "${VERIFY[@]}" name=v)
  if [ "$N" -gt 1 ]; then
    cols=1
    while [ $((cols * cols)) -lt "$N" ]; do cols=$((cols + 1)); done
    DESC+=(! nvmultistreamtiler "rows=$(( (N + cols - 1) / cols ))" "columns=$cols" width=1280 height=720)
  fi
  DESC+=(! nvdsosd ! "${SINK[@]}")
elif [ "$N" -eq 1 ]; then
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
