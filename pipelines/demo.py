#!/usr/bin/python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""The demo: Stage 2 verifying a real detector's alarms on real footage.

    vtest.avi → decode → iguardreplay (OpenCV HOG person detections) → iguardverify (a fast
    cut of a pretrained video backbone, mc3_18 on 4 tiles at 56 x 56, with a head trained here:
    models/backbone, models/verifier; one clip per tracked object) → iguardpublish (event log)
    → iguardoverlay → VP8/WebM file, and key frames as PNG

Writes, under OUT (demo-output/): demo.webm (the annotated video; plays in a browser),
contact-sheet.png (key frames), frame.png (the held-out frame with the most verdicts on screen)
and events.jsonl (the event log, one line per verdict). Prints one line per verdict and a
summary.

Offline processing of a file: `async=false`, so each verdict is known on the very frame that
completes its clip and is drawn from there on, whatever the machine's speed. A live camera runs
with the default `async=true` and never waits.

Needs: Debian's /usr/bin/python3 with python3-gi and python3-opencv, GStreamer's good plugins
(vp8enc, webmmux), gstreamer1.0-libav (the footage's codec), the built plugin on
GST_PLUGIN_PATH, `make footage` and `make models` (all of which `make demo` does).
Run here: yes, by `make demo`; `make test` runs it too (tests/python/demo_test.py).
"""

import argparse
import json
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

FPS = 10  # vtest.avi
HOLD_S = 3.0  # iguardoverlay's default hold
KEEP_EVERY = 5  # frames kept (half size) to choose key frames from
HELD_OUT_FROM = 478  # the verifier's test part starts here (models/verifier)
NONE = 2**64 - 1  # GST_CLOCK_TIME_NONE / G_MAXUINT64


def pipeline_text(a):
    return (
        f"filesrc location={a.video} ! decodebin ! videoconvert ! video/x-raw,format=RGBA "
        f"! iguardreplay location={a.detections} class-labels=1=person "
        f"! iguardverify name=verify model-path={a.model} labels-file={a.labels} async=false "
        f"! iguardpublish file-path={a.out}/events.jsonl "
        f"! iguardoverlay "
        f"! tee name=t "
        f"t. ! queue ! videoconvert ! vp8enc deadline=1 cpu-used=8 threads=2 "
        f"! webmmux ! filesink location={a.out}/demo.webm "
        f"t. ! queue ! videoscale ! videoconvert "
        f"! video/x-raw,format=BGR,width=384,height=288 ! appsink name=frames sync=false"
    )


def end_frame(v):
    pts = v["clip-end-pts"]
    return -1 if pts is None or pts >= NONE else pts // (1_000_000_000 // FPS)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", required=True)
    p.add_argument("--detections", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--out", default="demo-output")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (tests)")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name in ("events.jsonl", "demo.webm"):
        if os.path.exists(os.path.join(a.out, name)):
            os.remove(os.path.join(a.out, name))

    Gst.init(None)
    text = pipeline_text(a)
    print("Pipeline: gst-launch-1.0 " + text)
    pipeline = Gst.parse_launch(text)
    sink = pipeline.get_by_name("frames")
    sink.set_property("emit-signals", True)
    kept = {}  # frame number → half-size BGR frame
    count = [0]
    loop = GLib.MainLoop()

    def on_sample(s):
        sample = s.emit("pull-sample")
        buf = sample.get_buffer()
        n = count[0]
        count[0] += 1
        if n % KEEP_EVERY == 0:
            ok, m = buf.map(Gst.MapFlags.READ)
            if ok:
                kept[n] = np.frombuffer(m.data, np.uint8).reshape(288, 384, 3).copy()
                buf.unmap(m)
        if a.max_frames and count[0] == a.max_frames:
            GLib.idle_add(lambda: pipeline.send_event(Gst.Event.new_eos()) and False)
        return Gst.FlowReturn.OK

    sink.connect("new-sample", on_sample)
    verdicts = []
    failure = []

    def on_message(_bus, msg):
        t = msg.type
        if t == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s and s.get_name() == "iguard-verification":
                v = {k: s.get_value(k) for k in (
                    "request-id", "status", "score", "label", "object-id", "frames",
                    "clip-end-pts")}
                verdicts.append(v)
                score = "   -" if v["status"] == "dropped" else f"{v['score']:.2f}"
                oid = v["object-id"]
                who = f"#{oid}" if oid is not None and oid < NONE else "-"
                print(f"verdict {v['request-id']:3d}: object {who:<5s} {v['status']:<8s} "
                      f"{score}  {v['label'] or '-':<16s} frame {end_frame(v):3d}, "
                      f"{v['frames']} frames")
        elif t == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            failure.append(f"{err.message} ({dbg})")
            loop.quit()
        elif t == Gst.MessageType.EOS:
            loop.quit()
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    stats = pipeline.get_by_name("verify").get_property("stats")
    pipeline.set_state(Gst.State.NULL)
    if failure:
        sys.exit("demo failed: " + failure[0])

    scored = [v for v in verdicts if v["status"] in ("verified", "rejected")]
    verified = [v for v in scored if v["status"] == "verified"]
    rejected = [v for v in scored if v["status"] == "rejected"]
    dropped = [v for v in verdicts if v["status"] == "dropped"]
    with open(os.path.join(a.out, "events.jsonl")) as f:
        events = sum(1 for _ in f)
    print()
    print(f"Stage 1 (HOG person detector): {len(verdicts)} alarms (clips) of "
          f"{len({v['object-id'] for v in verdicts})} tracked objects in {count[0]} frames "
          f"({count[0] / FPS:.0f} s)")
    print(f"Stage 2 (models/verifier.onnx): {len(verified)} verified, {len(rejected)} rejected "
          f"(false alarms removed), {len(dropped)} dropped (track lost before min-frames)")
    print(f"stats: submitted {stats.get_value('submitted')}, verified "
          f"{stats.get_value('verified')}, rejected {stats.get_value('rejected')}, dropped "
          f"{stats.get_value('dropped')}, pending {stats.get_value('pending')}")
    print(f"event log: {events} events in {a.out}/events.jsonl")

    # Key frames: the kept held-out frame with the most verdicts on screen, and a sheet of 8.
    def on_screen(n):
        return sum(1 for v in scored if 0 <= n - end_frame(v) < HOLD_S * FPS)

    if kept:
        frames = sorted(kept)
        held_out = [n for n in frames if n >= HELD_OUT_FROM] or frames
        best = max(held_out, key=lambda n: (on_screen(n), n))
        cv2.imwrite(os.path.join(a.out, "frame.png"), kept[best])
        k = min(8, len(frames))
        picks = [frames[i * (len(frames) - 1) // max(k - 1, 1)] for i in range(k)]
        tiles = []
        for n in picks:
            f = kept[n].copy()
            cv2.putText(f, f"frame {n}", (6, 282), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (255, 255, 255), 1)
            tiles.append(f)
        while len(tiles) % 4:
            tiles.append(np.zeros_like(tiles[0]))
        rows = [np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles), 4)]
        cv2.imwrite(os.path.join(a.out, "contact-sheet.png"), np.vstack(rows))
        print(f"wrote {a.out}/demo.webm, {a.out}/contact-sheet.png, {a.out}/frame.png "
              f"(frame {best}, {on_screen(best)} verdicts on screen)")
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump({"frames": count[0], "clips": len(verdicts), "verified": len(verified),
                   "rejected": len(rejected), "dropped": len(dropped), "events": events,
                   "stats_pending": stats.get_value("pending")}, f)


if __name__ == "__main__":
    main()
