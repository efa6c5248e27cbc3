# shellcheck shell=bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Shared by the example scripts (sourced, not run): finds the repository from this file's
# location, the built plugin and ONNX Runtime, and turns `gst-launch-1.0 -m` output into one
# readable line per verdict and per stats message.
#
# Needs: bash, gst-launch-1.0 / gst-inspect-1.0 (Debian: gstreamer1.0-tools), awk, a built
#        plugin (`cargo build`, or `make build`).
# Run here: yes, through the scripts that source it (tests/pipelines.rs).
#
# Environment (all optional):
#   GST_PLUGIN_PATH     where libgstiguard.so is; default: the newer of target/release and
#                       target/debug of this repository
#   ORT_DYLIB_PATH      ONNX Runtime library; default: .venv/ort/libonnxruntime.so (make venv)
#   IGUARD_NUM_BUFFERS  frames per camera (default 90)
#   IGUARD_MODEL        ONNX model; default models/tiny-action.onnx when present, "" = none
#                       (the label-based fallback scorer)
#   IGUARD_MODEL_PROPS  extra iguardverify properties for IGUARD_MODEL (default: the tiny
#                       model's labels-file and positive-classes)
#   IGUARD_RAW=1        print gst-launch-1.0 -m output as it is

IGUARD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export IGUARD_ROOT

if [ -z "${GST_PLUGIN_PATH:-}" ]; then
  for dir in "$IGUARD_ROOT/target/release" "$IGUARD_ROOT/target/debug"; do
    if [ -e "$dir/libgstiguard.so" ] && { [ -z "${GST_PLUGIN_PATH:-}" ] ||
      [ "$dir/libgstiguard.so" -nt "$GST_PLUGIN_PATH/libgstiguard.so" ]; }; then
      GST_PLUGIN_PATH=$dir
    fi
  done
  export GST_PLUGIN_PATH
fi
if [ -z "${ORT_DYLIB_PATH:-}" ] && [ -e "$IGUARD_ROOT/.venv/ort/libonnxruntime.so" ]; then
  export ORT_DYLIB_PATH="$IGUARD_ROOT/.venv/ort/libonnxruntime.so"
fi

if ! gst-inspect-1.0 iguardverify >/dev/null 2>&1; then
  echo "iguardverify not found (GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-unset})." >&2
  echo "Build the plugin first: cargo build (or make build) in $IGUARD_ROOT" >&2
  exit 1
fi

NUM_BUFFERS=${IGUARD_NUM_BUFFERS:-90}
DETECTIONS="$IGUARD_ROOT/tests/data/demo-detections.txt"

# MODEL_PROPS: the iguardverify properties that choose the scorer, as an array.
MODEL_PROPS=()
if [ -z "${IGUARD_MODEL+set}" ]; then
  if [ -f "$IGUARD_ROOT/models/tiny-action.onnx" ]; then
    MODEL_PROPS=("model-path=$IGUARD_ROOT/models/tiny-action.onnx"
      "labels-file=$IGUARD_ROOT/models/tiny-action.labels.txt" "positive-classes=armed")
  fi
elif [ -n "$IGUARD_MODEL" ]; then
  # shellcheck disable=SC2206 # extra properties are words by design
  MODEL_PROPS=("model-path=$IGUARD_MODEL" ${IGUARD_MODEL_PROPS:-})
fi
if [ ${#MODEL_PROPS[@]} -eq 0 ]; then
  echo "note: no model: the label-based fallback scorer verifies (make models builds" \
    "models/tiny-action.onnx)" >&2
fi

# Reads `gst-launch-1.0 -m` output; prints a line per verdict, stats message and warning.
format_messages() {
  if [ "${IGUARD_RAW:-0}" = 1 ]; then
    cat
    return
  fi
  awk '
    function fields(line,    body, n, parts, i, kv, k, v) {
      delete f
      body = line
      sub(/^[^:]*\): [a-z-]*, /, "", body)   # drop "Got message #N from element "x" (element): name, "
      sub(/;$/, "", body)
      n = split(body, parts, /, /)
      for (i = 1; i <= n; i++) {
        k = parts[i]; sub(/=.*/, "", k)
        v = parts[i]; sub(/^[^=]*=/, "", v)
        sub(/^\([a-zA-Z0-9]*\)/, "", v)         # the type annotation
        gsub(/\\/, "", v); gsub(/"/, "", v)
        f[k] = v
      }
    }
    function element(line,    e) {
      e = line; sub(/^Got message #[0-9]+ from element "/, "", e); sub(/".*/, "", e)
      return e
    }
    / \(element\): iguard-verification, / {
      fields($0)
      printf "verdict %s #%s source %s pad %s: %-8s score %.3f (threshold %.2f) label %s, trigger %s %.2f, %s frames, %.1f ms, scorer %s%s\n",
        element($0), f["request-id"], f["source-id"], f["pad-index"], f["status"], f["score"],
        f["threshold"], (f["label"] == "" ? "-" : f["label"]), f["trigger-label"], f["trigger-confidence"], f["frames"],
        f["processing-ms"], f["scorer"], (f["reason"] == "" ? "" : ", reason " f["reason"])
      fflush()
      next
    }
    / \(element\): iguard-stats, / {
      fields($0)
      printf "stats %s: submitted %s = verified %s + rejected %s + fallback %s + timed-out %s + dropped %s + failed %s + pending %s; scorer %s, pool %s, model-instance-id %s, instance-users %s\n",
        element($0), f["submitted"], f["verified"], f["rejected"], f["fallback"], f["timed-out"],
        f["dropped"], f["failed"], f["pending"], f["scorer"], f["pool"],
        (f["model-instance-id"] == "" ? "-" : f["model-instance-id"]), f["instance-users"]
      fflush()
      next
    }
    / \(warning\): / { print "warning: " $0; fflush(); next }
    /^(ERROR|WARNING)/ { print; fflush() }
  '
}

# Runs gst-launch-1.0 -m with the given description words, printing formatted messages; the
# exit status is that of gst-launch-1.0.
run_pipeline() {
  echo "Pipeline: gst-launch-1.0 $*" >&2
  set -o pipefail
  gst-launch-1.0 -m "$@" | format_messages
}
