#!/usr/bin/python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Upstream GStreamer's own detector in front of iguardverify (issue 22), shortened: the first
FRAMES frames of vtest.avi through pipelines/upstream.py (onnxinference with the SSDLite person
detector of upstream.mk ! ssdobjectdetector ! iguardverify with models/verifier.onnx !
objectdetectionoverlay ! vp8enc ! webmmux).

    upstream_test.py --video V --model SSD.onnx --labels SSD.labels --verifier V.onnx
        --verifier-labels V.labels --out DIR

Needs GStreamer 1.24 or later with gst-plugins-bad's ONNX elements: `make test-debian13`
runs it inside the Debian 13 root. Nothing is skipped: a missing model, element or file fails.
Checks that the detector found people (boxes labelled person, on most frames), that
iguardverify's tracker gave them ids (tracking mtds related to the detector's od mtds), that
it gave scored verdicts on those objects and wrote each next to the detector's box (a
classification mtd related to the od mtd of that tracking id), and that the video decodes
(GStreamer's own decoder) to FRAMES frames at the footage's size."""

import argparse
import csv
import json
import os
import subprocess
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

FRAMES = 80
# Frames between a clip's last sampled frame and the buffer its verdict goes on, at most.
LAG = 3
VTEST_SIZE = (768, 576)
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def decoded_frames(path):
    """Frames and size of the video at `path`, decoded by GStreamer."""
    p = Gst.parse_launch(
        f"filesrc location={path} ! decodebin ! videoconvert ! video/x-raw,format=I420 "
        "! appsink name=s sync=false")
    sink = p.get_by_name("s")
    p.set_state(Gst.State.PLAYING)
    n, size = 0, None
    while True:
        sample = sink.emit("try-pull-sample", 30 * Gst.SECOND)
        if sample is None:
            break
        s = sample.get_caps().get_structure(0)
        size = (s.get_value("width"), s.get_value("height"))
        n += 1
    msg = p.get_bus().pop_filtered(Gst.MessageType.ERROR)
    p.set_state(Gst.State.NULL)
    if msg is not None:
        err, dbg = msg.parse_error()
        return n, size, f"{err.message} ({dbg})"
    return n, size, None


def main():
    p = argparse.ArgumentParser()
    for name in ("video", "model", "labels", "verifier", "verifier-labels", "out"):
        p.add_argument("--" + name, required=True)
    a = p.parse_args()
    Gst.init(None)
    print("upstream test on", Gst.version_string(), flush=True)
    for element in ("onnxinference", "ssdobjectdetector", "objectdetectionoverlay",
                    "iguardverify"):
        check(Gst.ElementFactory.find(element) is not None, f"element {element} is installed")
    here = os.path.dirname(os.path.abspath(__file__))
    cmd = [sys.executable, os.path.join(here, "..", "..", "pipelines", "upstream.py"),
           "--video", a.video, "--model", a.model, "--labels", a.labels,
           "--verifier", a.verifier, "--verifier-labels", a.verifier_labels,
           "--frames", str(FRAMES), "--out", a.out]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    print(run.stdout, run.stderr, sep="", flush=True)
    check(run.returncode == 0, f"pipelines/upstream.py exits 0 (got {run.returncode})")
    if run.returncode != 0:
        sys.exit(f"{len(failures)} failed")
    summary = json.load(open(os.path.join(a.out, "summary.json")))
    with open(os.path.join(a.out, "frames.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))

    check(summary["frames"] == FRAMES, f"{FRAMES} frames through iguardverify "
          f"(got {summary['frames']})")
    frames_with_boxes = {r["frame"] for r in rows}
    check(len(frames_with_boxes) >= FRAMES // 2,
          f"the detector found people on most frames ({len(frames_with_boxes)} of {FRAMES})")
    check(all(r["label"] == "person" for r in rows),
          "every box is labelled person (ssdobjectdetector's label-file, class 1)")
    check(all(0 <= int(r["x"]) and int(r["w"]) > 0 and int(r["x"]) + int(r["w"]) <= 770
              and int(r["h"]) > 0 for r in rows), "the boxes lie in the 768x576 frame")
    tracked = {int(r["tracking_id"]) for r in rows if r["tracking_id"]}
    check(len(tracked) >= 3, f"iguardverify's tracker gave the detector's boxes ids, as "
          f"tracking mtds related to them ({len(tracked)} objects)")
    scored = [v for v in summary["verdicts"] if v["status"] in ("verified", "rejected")]
    check(len(scored) >= 2, f"scored verdicts ({len(scored)} of {len(summary['verdicts'])})")
    check(all(v["object-id"] in tracked for v in scored),
          "each scored verdict names an object the detector's boxes carry")
    check(all(v["trigger-label"] == "person" for v in scored),
          "each scored verdict was triggered by a person box")
    # The verdict as a classification mtd related to the detector's own od mtd: on a buffer
    # shortly after its clip ends (async=false: the buffer that completed the clip; clip-end-pts
    # is its last sampled frame), when the detector still boxes that object there (a clip may
    # end on frames the tracker bridged after the detector lost the person, or after the last
    # buffer: then only IGuardVerificationMeta and the bus message carry it).
    cls_on = {}
    for r in rows:
        for c in filter(None, r["classes"].split(",")):
            cls_on.setdefault((int(r["tracking_id"] or -1), int(r["frame"])), set()).add(
                c.split("=")[0])

    def near(v, frame):
        return v["end-frame"] <= frame <= v["end-frame"] + LAG

    written = [v for v in scored if any(
        k[0] == v["object-id"] and near(v, k[1]) and f"iguard-{v['status']}" in c
        and v["label"] in c for k, c in cls_on.items())]
    check(len(written) >= max(3, len(scored) // 4),
          f"verdicts written as classification mtds next to the detector's boxes: "
          f"{[v['request-id'] for v in written]} of {len(scored)}")
    stray = [(k, sorted(c)) for k, c in cls_on.items() if not any(
        v["object-id"] == k[0] and near(v, k[1]) and f"iguard-{v['status']}" in c
        for v in summary["verdicts"])]
    check(not stray, f"each classification mtd is a verdict's, on its object: {stray}")
    n, size, err = decoded_frames(os.path.join(a.out, "upstream.webm"))
    check(err is None and n == FRAMES and size == VTEST_SIZE,
          f"upstream.webm decodes to {FRAMES} frames of {VTEST_SIZE} (got {n}, {size}, {err})")
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failed", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
