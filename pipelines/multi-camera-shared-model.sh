#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Four "cameras" in one pipeline, each with its own iguardverify, all sharing one model load
# and one worker pool through model-instance-id=site (the first element to start loads the
# model; the others join it). Each camera replays the demo detections, shifted in time so the
# cameras trigger at different moments.
#
#   videotestsrc ! iguardreplay ! iguardverify model-instance-id=site ! fakesink   (x4)
#
# At EOS each element prints its stats: all four name the same pool and 4 instance users.
#
# Needs: Debian 12 (or any GStreamer >= 1.20) with gstreamer1.0-tools and
#        gstreamer1.0-plugins-base; the plugin built (cargo build); optionally
#        models/tiny-action.onnx and ONNX Runtime (as for replay-demo.sh).
# Run here: yes, on Debian 12 x86_64 without a GPU (tests/pipelines.rs runs it with
#           IGUARD_NUM_BUFFERS=40 and checks the four elements report one pool).
#
# Environment: see pipelines/common.sh (GST_PLUGIN_PATH, ORT_DYLIB_PATH, IGUARD_NUM_BUFFERS,
# IGUARD_MODEL, IGUARD_RAW), and
#   IGUARD_CAMERAS   how many cameras (default 4)
#
# Usage: pipelines/multi-camera-shared-model.sh

set -euo pipefail
# shellcheck source=pipelines/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CAMERAS=${IGUARD_CAMERAS:-4}
PATTERNS=(ball smpte snow pinwheel gamut circular blink spokes)
CAPS="video/x-raw,width=320,height=240,framerate=30/1"

DESC=()
for ((i = 0; i < CAMERAS; i++)); do
  # Camera i sees the recorded scene 5*i frames later than camera 0.
  DESC+=(videotestsrc "num-buffers=$NUM_BUFFERS" "pattern=${PATTERNS[i % ${#PATTERNS[@]}]}"
    ! "$CAPS"
    ! iguardreplay "location=$DETECTIONS" "frame-offset=$((-5 * i))"
    ! iguardverify "name=cam$i" model-instance-id=site cooldown=0 "${MODEL_PROPS[@]}"
    ! fakesink sync=false)
done

run_pipeline "${DESC[@]}"
