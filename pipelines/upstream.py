#!/usr/bin/python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Upstream GStreamer's own detector in front of iguardverify (issue 22), on real footage.

    filesrc (vtest.avi) ! decodebin ! videoconvertscale
    ! onnxinference (SSDLite person detector, upstream.mk) ! ssdobjectdetector
    ! iguardverify (models/verifier.onnx) ! videoconvert ! objectdetectionoverlay
    ! videoconvert ! vp8enc ! webmmux ! filesink

Needs: GStreamer 1.24 or later with gst-plugins-bad's ONNX elements (Debian 13), python3-gi
with GstAnalytics, the detector of `make ssd-model`. `make upstream-run` runs it inside the
Debian 13 root.
Run here: yes, inside the Debian 13 root (the whole 795 frames; `make test-debian13` runs it on
80 frames through tests/python/upstream_test.py); not on Debian 12, whose GStreamer 1.22 has no
onnxinference. Writes, under --out: upstream.webm (the video
with upstream's overlay), frames.tsv (per frame: the detector's boxes, the tracking ids
iguardverify gave them, the verdicts written next to them as classification mtds),
detections.txt (the detector's boxes as iguardreplay reads them) and summary.json (verdicts,
each element's time per frame). Prints the verdicts and the timings.

With --replay FILE, the ROI-meta path instead, on the same frames and caps: iguardreplay
(FILE's boxes as ROI metas) ! iguardverify ! fakesink, to set iguardverify's streaming-thread
cost on ROI metas beside its cost on the detector's mtds.

Each element's time per frame is taken with pad probes on its sink and src pads (the time
between a buffer entering and that buffer leaving; every element here runs on the one
streaming thread, so nothing else runs in between). The probes themselves cost a few
microseconds each, included in the figures."""

import argparse
import json
import os
import statistics
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstAnalytics", "1.0")
from gi.repository import GLib, Gst, GstAnalytics  # noqa: E402

NONE = 2**64 - 1
META = "IGuardVerificationMeta"
TIMED = ["convert", "detect", "decode", "verify", "pre-overlay", "overlay", "replay"]


def pipeline_text(a):
    # identity's eos-after answers buffer N with EOS: N - 1 buffers pass.
    head = (f"filesrc location={a.video} ! decodebin ! identity name=limit "
            f"eos-after={a.frames + 1} "
            if a.frames else f"filesrc location={a.video} ! decodebin ! identity name=limit ")
    verify = (f"iguardverify name=verify model-path={a.verifier} labels-file={a.verifier_labels} "
              f"async={'true' if a.async_ else 'false'} ")
    if a.replay:
        if a.pace_ms:
            head += f"! identity sleep-time={int(a.pace_ms * 1000)} "
        return (head + "! videoconvertscale name=convert ! video/x-raw,format=RGB "
                f"! iguardreplay name=replay location={a.replay} class-labels=1=person "
                f"! {verify}! fakesink sync=false")
    return (head + "! videoconvertscale name=convert "
            f"! onnxinference name=detect model-file={a.model} "
            f"! ssdobjectdetector name=decode label-file={a.labels} score-threshold={a.score} "
            f"! {verify}! videoconvert name=pre-overlay ! objectdetectionoverlay name=overlay "
            f"! videoconvert ! vp8enc deadline=1 cpu-used=8 threads=2 ! webmmux "
            f"! filesink location={a.out}/upstream.webm")


def frame_of(pts, fps):
    return -1 if pts is None or pts >= NONE else round(pts * fps / Gst.SECOND)


def read_frame(buf):
    """The detector's boxes on a buffer after iguardverify: [(od id, label, x, y, w, h, conf,
    tracking id or None, [(class, level), ...] of the cls mtds related to it)]."""
    m = GstAnalytics.buffer_get_analytics_relation_meta(buf)
    if m is None:
        return []
    any_type = GstAnalytics.MTD_TYPE_ANY
    od_type = GstAnalytics.ODMtd.get_mtd_type()
    trk_type = GstAnalytics.TrackingMtd.get_mtd_type()
    cls_type = GstAnalytics.ClsMtd.get_mtd_type()
    ods, trks, clss = [], {}, {}
    for i in range(1024):
        ok, mtd = m.get_mtd(i, any_type)
        if not ok:
            break
        t = mtd.get_mtd_type()
        if t == od_type:
            ok, od = m.get_od_mtd(i)
            ok, x, y, w, h, conf = od.get_location()
            ods.append((i, GLib.quark_to_string(od.get_obj_type()) or "", x, y, w, h, conf))
        elif t == trk_type:
            ok, trk = m.get_tracking_mtd(i)
            trks[i] = trk.get_info().tracking_id
        elif t == cls_type:
            ok, cls = m.get_cls_mtd(i)
            clss[i] = [(GLib.quark_to_string(cls.get_quark(k)), cls.get_level(k))
                       for k in range(cls.get_length())]
    out = []
    for (oid, label, x, y, w, h, conf) in ods:
        tid = next((v for k, v in trks.items()
                    if m.get_relation(oid, k) or m.get_relation(k, oid)), None)
        cls = [c for k, v in clss.items()
               if m.get_relation(oid, k) & GstAnalytics.RelTypes.RELATE_TO for c in v]
        out.append((oid, label, x, y, w, h, conf, tid, cls))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--video", required=True)
    p.add_argument("--model", help="the detector (.onnx)")
    p.add_argument("--labels", help="ssdobjectdetector's label file")
    p.add_argument("--verifier", required=True)
    p.add_argument("--verifier-labels", required=True)
    p.add_argument("--frames", type=int, default=0, help="frames to run (0: all)")
    p.add_argument("--score", type=float, default=0.3, help="ssdobjectdetector score-threshold")
    p.add_argument("--async", dest="async_", action="store_true",
                   help="iguardverify async=true (the default of a live pipeline)")
    p.add_argument("--replay", help="the ROI-meta path on these detections (iguardreplay)")
    p.add_argument("--pace-ms", type=float, default=0.0,
                   help="with --replay: hold each frame this long first (the detector's pace)")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if not a.replay and not (a.model and a.labels):
        sys.exit("--model and --labels are needed (or --replay)")
    os.makedirs(a.out, exist_ok=True)
    Gst.init(None)
    pipeline = Gst.parse_launch(pipeline_text(a))

    t_in, spans = {}, {n: [] for n in TIMED}

    def on_in(name):
        def probe(_pad, info):
            t_in[(name, info.get_buffer().pts)] = time.perf_counter_ns()
            return Gst.PadProbeReturn.OK
        return probe

    def on_out(name):
        def probe(_pad, info):
            t = time.perf_counter_ns()
            t0 = t_in.pop((name, info.get_buffer().pts), None)
            if t0 is not None:
                spans[name].append((t - t0) / 1e6)
            return Gst.PadProbeReturn.OK
        return probe

    for name in TIMED:
        e = pipeline.get_by_name(name)
        if e is None:
            continue
        e.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_in(name))
        e.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_out(name))

    frames = []

    def on_verified(_pad, info):
        buf = info.get_buffer()
        frames.append((frame_of(buf.pts, a.fps), read_frame(buf)))
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("verify").get_static_pad("src").add_probe(
        Gst.PadProbeType.BUFFER, on_verified)

    verdicts, failure = [], []
    loop = GLib.MainLoop()

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s and s.get_name() == "iguard-verification":
                v = {k: s.get_value(k) for k in (
                    "request-id", "status", "score", "label", "object-id", "frames",
                    "clip-start-pts", "clip-end-pts", "trigger-label")}
                v["start-frame"] = frame_of(v.pop("clip-start-pts"), a.fps)
                v["end-frame"] = frame_of(v.pop("clip-end-pts"), a.fps)
                oid = v["object-id"]
                v["object-id"] = oid if oid is not None and oid < NONE else None
                verdicts.append(v)
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            failure.append(f"{err.message} ({dbg})")
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    t0 = time.monotonic()
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    wall = time.monotonic() - t0
    stats = pipeline.get_by_name("verify").get_property("stats")
    pipeline.set_state(Gst.State.NULL)
    if failure:
        sys.exit("pipeline error: " + failure[0])

    timing = {}
    for name, xs in spans.items():
        if xs:
            xs = sorted(xs)
            timing[name] = {"frames": len(xs), "median_ms": statistics.median(xs),
                            "p90_ms": xs[int(0.9 * (len(xs) - 1))], "mean_ms": statistics.mean(xs)}
    summary = {
        "path": "roi-meta (iguardreplay)" if a.replay else "upstream (onnxinference ! ssdobjectdetector)",
        "async": a.async_, "frames": len(frames), "wall_s": wall, "timing": timing,
        "verdicts": verdicts,
        "stats": {k: stats.get_value(k) for k in ("submitted", "verified", "rejected", "dropped")
                  if stats.has_field(k)},
        "detector_boxes": sum(len(f) for _, f in frames),
        "frames_with_verdict_mtds": sum(1 for _, f in frames if any(d[8] for d in f)),
        "boxes_with_tracking_ids": sum(1 for _, f in frames for d in f if d[7] is not None),
    }
    if not a.replay:
        with open(os.path.join(a.out, "frames.tsv"), "w") as f:
            f.write("frame\tod\tlabel\tx\ty\tw\th\tconfidence\ttracking_id\tclasses\n")
            for n, ds in frames:
                for (oid, label, x, y, w, h, conf, tid, cls) in ds:
                    f.write(f"{n}\t{oid}\t{label}\t{x}\t{y}\t{w}\t{h}\t{conf:.3f}\t"
                            f"{'' if tid is None else tid}\t"
                            + ",".join(f"{c}={lv:.2f}" for c, lv in cls) + "\n")
        with open(os.path.join(a.out, "detections.txt"), "w") as f:
            f.write("# ssdobjectdetector's boxes (pipelines/upstream.py), MOT layout\n")
            for n, ds in frames:
                for (_oid, _label, x, y, w, h, conf, _tid, _cls) in ds:
                    f.write(f"{n + 1},-1,{x},{y},{w},{h},{conf:.4f},1\n")
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)

    for v in verdicts:
        score = "   -" if v["status"] == "dropped" else f"{v['score']:.2f}"
        who = "-" if v["object-id"] is None else f"#{v['object-id']}"
        print(f"verdict {v['request-id']:3d}: object {who:<5s} {v['status']:<8s} {score}  "
              f"{v['label'] or '-':<16s} frames {v['start-frame']}-{v['end-frame']} "
              f"({v['frames']} frames)")
    print(f"{summary['path']}: {len(frames)} frames in {wall:.1f} s, "
          f"{summary['detector_boxes']} boxes, {summary['boxes_with_tracking_ids']} with a "
          f"tracking id, {summary['frames_with_verdict_mtds']} frames with a verdict mtd; "
          f"stats {summary['stats']}")
    for name in TIMED:
        if name in timing:
            t = timing[name]
            print(f"  {name:<12s} median {t['median_ms']:7.3f} ms  p90 {t['p90_ms']:7.3f} ms  "
                  f"mean {t['mean_ms']:7.3f} ms  ({t['frames']} frames)")


if __name__ == "__main__":
    main()
