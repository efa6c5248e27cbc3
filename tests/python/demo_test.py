#!/usr/bin/python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Runs the demo (pipelines/demo.py) as `make demo` does and checks what it wrote: the WebM
decodes (with GStreamer's own decoder, not ours) to one frame per input frame at the input's
size; the event log has one line per verdict, each a valid iguard.verdict/1 event; the PNGs
are images; nothing was left pending. Prints `N passed, N failed`."""

import json
import os
import subprocess
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

import cv2  # noqa: E402

VTEST_FRAMES = 795  # OpenCV's vtest.avi
VTEST_SIZE = (768, 576)


def decoded_frames(path):
    """Frames and size of the video at `path`, decoded by GStreamer."""
    p = Gst.parse_launch(
        f"filesrc location={path} ! decodebin ! videoconvert ! video/x-raw,format=I420 "
        "! appsink name=s sync=false")
    sink = p.get_by_name("s")
    p.set_state(Gst.State.PLAYING)
    n, size = 0, None
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        if size is None:
            st = sample.get_caps().get_structure(0)
            size = (st.get_value("width"), st.get_value("height"))
        n += 1
    p.set_state(Gst.State.NULL)
    return n, size


def main():
    args = sys.argv[1:]
    out = args[args.index("--out") + 1]
    here = os.path.dirname(os.path.abspath(__file__))
    demo = os.path.join(here, "..", "..", "pipelines", "demo.py")
    run = subprocess.run([sys.executable, demo] + args, capture_output=True, text=True,
                         timeout=900)
    print(run.stdout[-3000:])
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAILED: {what}")

    check(run.returncode == 0, f"the demo ran (exit {run.returncode}): {run.stderr[-2000:]}")
    if run.returncode != 0:
        print(f"{passed} passed, {failed} failed")
        sys.exit(1)
    Gst.init(None)
    frames, size = decoded_frames(os.path.join(out, "demo.webm"))
    check(frames == VTEST_FRAMES, f"demo.webm has {frames} frames, not {VTEST_FRAMES}")
    check(size == VTEST_SIZE, f"demo.webm is {size}, not {VTEST_SIZE}")
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    check(summary["frames"] == VTEST_FRAMES, f"summary frames {summary['frames']}")
    check(summary["stats_pending"] == 0, "nothing pending at the end")
    check(summary["verified"] > 0 and summary["rejected"] > 0,
          f"the verifier confirmed some alarms and rejected others: {summary}")
    with open(os.path.join(out, "events.jsonl")) as f:
        events = [json.loads(line) for line in f]
    verdicts = [e for e in events if e.get("schema") == "iguard.verdict/1"]
    incidents = [e for e in events if e.get("schema") == "iguard.incident/1"]
    check(len(verdicts) == summary["clips"],
          f"{len(verdicts)} verdict events for {summary['clips']} verdicts")
    check(len(verdicts) + len(incidents) == len(events), "every event's schema")
    ended = [e for e in incidents if e.get("type") == "end"]
    opened = [e for e in incidents if e.get("type") == "new"]
    check(len(opened) == len(ended) > 0, f"{len(opened)} incidents opened, {len(ended)} ended")
    check(len({e["event_id"] for e in events}) == len(events), "event ids are unique")
    for png in ("frame.png", "contact-sheet.png"):
        img = cv2.imread(os.path.join(out, png))
        check(img is not None and img.shape[0] > 100 and img.shape[1] > 100, f"{png} is an image")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
