#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# The replay demo: recorded detections (a person walking, a weapon in their hand on frames
# 20-36; tests/data/demo-detections.txt) drive iguardverify without a detector, over a test
# video with a red object beside the person. Prints one line per verdict (read from
# `gst-launch-1.0 -m` bus messages) and the element's stats at EOS.
#
#   videotestsrc (+ red box) ! iguardreplay ! iguardverify ! fakesink
#
# Needs: Debian 12 (or any GStreamer >= 1.20) with gstreamer1.0-tools and
#        gstreamer1.0-plugins-base; the plugin built (cargo build). With models/tiny-action.onnx
#        (make models) and ONNX Runtime (make venv, or ORT_DYLIB_PATH) the tiny model scores the
#        clips; without them the label-based fallback scorer does.
# Run here: yes, on Debian 12 x86_64 without a GPU (tests/pipelines.rs runs it with
#           IGUARD_NUM_BUFFERS=45, once with the tiny model, once with pipelines/config.yaml).
#
# Environment: see pipelines/common.sh (GST_PLUGIN_PATH, ORT_DYLIB_PATH, IGUARD_NUM_BUFFERS,
# IGUARD_MODEL, IGUARD_RAW), and
#   IGUARD_CONFIG   an I-Guard config.yaml whose step2 section sets the element (e.g.
#                   pipelines/config.yaml); the model path then comes from the file (a path
#                   relative to the working directory).
#
# Usage: pipelines/replay-demo.sh

set -euo pipefail
# shellcheck source=pipelines/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VERIFY=(iguardverify name=v cooldown=0)
if [ -n "${IGUARD_CONFIG:-}" ]; then
  # The file names the model; keep only the properties it has no key for (labels-file, ...),
  # since an explicit model-path would win over the file's.
  VERIFY+=("config-file=$IGUARD_CONFIG")
  for prop in "${MODEL_PROPS[@]}"; do
    [[ $prop == model-path=* ]] || VERIFY+=("$prop")
  done
else
  VERIFY+=("${MODEL_PROPS[@]}")
fi

CAPS="video/x-raw,width=320,height=240,framerate=30/1"
run_pipeline \
  compositor name=mix sink_1::xpos=128 sink_1::ypos=116 \
  ! "$CAPS" \
  ! iguardreplay "location=$DETECTIONS" \
  ! "${VERIFY[@]}" \
  ! fakesink sync=false \
  videotestsrc "num-buffers=$NUM_BUFFERS" pattern=ball ! "$CAPS" ! mix. \
  videotestsrc "num-buffers=$NUM_BUFFERS" pattern=red \
  ! video/x-raw,width=48,height=40,framerate=30/1 ! mix.
