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
summary: clips and incidents (alerts per minute by clip and by incident, incidents alerted vs
dismissed), the same from a second, verification-only run with a trigger zone over the lower
half of the frame, and Stage 2 per incident beside per clip on the held-out part.

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
# The zone of the zone figures: the lower half of the frame, the part of the square nearest the
# camera. Objects trigger only while their feet stand in it.
ZONE = "near:0,0.5 1,0.5 1,1 0,1"
LABELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "verifier",
                      "labels.tsv")


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
    incidents = []
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
            elif s and s.get_name() == "iguard-incident":
                incidents.append(incident_of(s))
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
    figures = incident_figures(a, count[0], scored, incidents)

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
                   "stats_pending": stats.get_value("pending"), **figures}, f)


def incident_of(s):
    return {k: s.get_value(k) for k in (
        "type", "incident-id", "object-id", "state", "end-reason", "start-pts", "clips",
        "clips-verified", "clips-unscored", "zones")}


def scored_any(i):
    """Whether a model scored at least one of the incident's clips."""
    return i["clips-unscored"] < i["clips"]


def ended(incidents):
    """The last change (`end`) of each incident."""
    return [i for i in incidents if i["type"] == "end"]


def zone_run(a):
    """The same verification with trigger-zones=near; its verdicts and incidents."""
    text = (f"filesrc location={a.video} ! decodebin ! videoconvert ! video/x-raw,format=RGBA "
            f"! iguardreplay location={a.detections} class-labels=1=person "
            f"! iguardverify model-path={a.model} labels-file={a.labels} async=false "
            f"zones=\"{ZONE}\" trigger-zones=near ! fakesink sync=false")
    if a.max_frames:
        text = text.replace("! fakesink", f"! identity eos-after={a.max_frames} ! fakesink")
    pipeline = Gst.parse_launch(text)
    verdicts, incidents = [], []
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    while True:
        msg = bus.timed_pop(Gst.CLOCK_TIME_NONE)
        if msg.type == Gst.MessageType.ERROR:
            pipeline.set_state(Gst.State.NULL)
            sys.exit(f"zone run failed: {msg.parse_error()[0].message}")
        if msg.type == Gst.MessageType.EOS:
            break
        s = msg.get_structure() if msg.type == Gst.MessageType.ELEMENT else None
        if s and s.get_name() == "iguard-verification":
            verdicts.append(s.get_value("status"))
        elif s and s.get_name() == "iguard-incident":
            incidents.append(incident_of(s))
    pipeline.set_state(Gst.State.NULL)
    return verdicts, incidents


def track_labels():
    """The label (person / false-detection) of every HOG track, by track id; excluded ones
    left out."""
    out = {}
    with open(LABELS) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            if "exclude" in cols[7]:
                continue
            out[int(cols[0])] = cols[6]
    return out


def incident_figures(a, frames, scored, incidents):
    """Alerts per minute by clip and by incident, incidents alerted vs dismissed, the same
    with the zone, and Stage 2 per incident on the held-out part."""
    minutes = frames / FPS / 60
    done = ended(incidents)
    alerted = [i for i in done if i["state"] == "alert"]
    dismissed = [i for i in done if i["state"] == "dismissed"]
    verified = sum(1 for v in scored if v["status"] == "verified")
    print()
    print(f"Alerts: {verified} by clip (verified verdicts, {verified / minutes:.1f}/min), "
          f"{len(alerted)} by incident ({len(alerted) / minutes:.1f}/min)")
    unscored = sum(1 for i in dismissed if not scored_any(i))
    print(f"Incidents: {len(done)} (one per tracked object with a clip): {len(alerted)} became "
          f"alerts, {len(dismissed)} dismissed ({len(dismissed) - unscored} by the model's "
          f"verdicts, {unscored} whose only clips were dropped: tracks lost before min-frames)")
    z_verdicts, z_incidents = zone_run(a)
    z_done = ended(z_incidents)
    z_alerted = [i for i in z_done if i["state"] == "alert"]
    z_verified = sum(1 for s in z_verdicts if s == "verified")
    print(f"With zones=\"{ZONE}\" trigger-zones=near (the lower half, nearest the camera): "
          f"{z_verified} alerts by clip ({z_verified / minutes:.1f}/min), {len(z_alerted)} by "
          f"incident ({len(z_alerted) / minutes:.1f}/min), {len(z_done) - len(z_alerted)} "
          f"dismissed; the {len(alerted) - len(z_alerted)} incident alerts of people only in "
          f"the far half are gone")
    figures = {
        "minutes": round(minutes, 3), "alerts_by_clip": verified,
        "alerts_by_incident": len(alerted), "incidents": len(done),
        "incidents_dismissed": len(dismissed), "incidents_never_scored": unscored,
        "zone_alerts_by_clip": z_verified,
        "zone_alerts_by_incident": len(z_alerted), "zone_incidents": len(z_done),
    }
    # The held-out part (frames 478 on): by incident beside by clip, from the tracks' labels.
    labels = track_labels()
    frame_ns = 1_000_000_000 // FPS
    late = [i for i in done
            if i["start-pts"] < NONE and i["start-pts"] // frame_ns >= HELD_OUT_FROM
            and i["object-id"] in labels]
    clips = [v for v in scored
             if end_frame(v) >= HELD_OUT_FROM and v["object-id"] in labels]

    def share(items, label, good):
        of = [x for x in items if labels[x["object-id"]] == label]
        return sum(1 for x in of if good(x)), len(of)

    late = [i for i in late if scored_any(i)]
    pi = share(late, "person", lambda i: i["state"] == "alert")
    fi = share(late, "false-detection", lambda i: i["state"] == "dismissed")
    pc = share(clips, "person", lambda v: v["status"] == "verified")
    fc = share(clips, "false-detection", lambda v: v["status"] == "rejected")
    print(f"Held-out part (frames {HELD_OUT_FROM} on; incidents with a scored clip), Stage 2 "
          f"per incident: {pi[0]}/{pi[1]} person incidents alerted, {fi[0]}/{fi[1]} false "
          f"incidents dismissed; per clip: {pc[0]}/{pc[1]} person clips verified, "
          f"{fc[0]}/{fc[1]} false clips rejected")
    figures.update({"held_out_person_incidents_alerted": list(pi),
                    "held_out_false_incidents_dismissed": list(fi),
                    "held_out_person_clips_verified": list(pc),
                    "held_out_false_clips_rejected": list(fc)})
    return figures


if __name__ == "__main__":
    main()
