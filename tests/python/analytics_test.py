#!/usr/bin/python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""GstAnalytics in and out of iguardverify (issue 22), with GStreamer's own analytics API.

Needs GStreamer 1.24 or later and its GstAnalytics typelib: `make test-debian13-analytics`
runs it inside the Debian 13 root (GStreamer 1.26) with the root's build of the plugin on
GST_PLUGIN_PATH. Exits non-zero on any failure; nothing is skipped.

Each frame carries, in one GstAnalyticsRelationMeta:
- three tracked people: od mtds related to tracking mtds (ids 101, 202, 303); 202's relation
  goes the other way (tracking -> od), which must be read too;
- for 303, an ROI meta with the same label and box: one object, not two;
- odd mtds: an od with a NaN confidence, one with a negative width, a tracking mtd related to
  nothing, an od of a label that triggers nothing, a classification mtd of someone else's.
The element (fallback scorer, async=false) must make clips for 101, 202 and 303 only, and each
verdict it attaches (IGuardVerificationMeta) must come with a classification mtd related to
the od mtd of that tracking id, read back after a queue and on both branches of a tee.
Then iguardoverlay alone: it draws an od mtd's box (no ROI meta on the frame)."""

import math
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
gi.require_version("GstAnalytics", "1.0")
from gi.repository import GLib, Gst, GstAnalytics, GstVideo  # noqa: E402

W, H, FRAMES, CLIP = 320, 240, 40, 4
TRACKED = {101: (20, 40, 60, 120), 202: (120, 40, 60, 120), 303: (220, 40, 60, 120)}
META = "IGuardVerificationMeta"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def q(s):
    return GLib.quark_from_string(s)


def decorate(buf):
    """Adds this test's metadata to one frame."""
    m = GstAnalytics.buffer_add_analytics_relation_meta(buf)
    for tid, (x, y, w, h) in TRACKED.items():
        ok, od = m.add_od_mtd(q("person"), x, y, w, h, 0.9)
        assert ok
        ok, trk = m.add_tracking_mtd(tid, 0)
        assert ok
        if tid == 202:
            m.set_relation(GstAnalytics.RelTypes.RELATE_TO, trk.id, od.id)
        else:
            m.set_relation(GstAnalytics.RelTypes.RELATE_TO, od.id, trk.id)
    GstVideo.buffer_add_video_region_of_interest_meta(buf, "person", *TRACKED[303])
    # Odd ones.
    ok, nan = m.add_od_mtd(q("person"), 10, 180, 40, 40, float("nan"))
    ok, trk = m.add_tracking_mtd(404, 0)
    m.set_relation(GstAnalytics.RelTypes.RELATE_TO, nan.id, trk.id)
    ok, neg = m.add_od_mtd(q("person"), 100, 180, -40, 40, 0.9)
    ok, trk = m.add_tracking_mtd(505, 0)
    m.set_relation(GstAnalytics.RelTypes.RELATE_TO, neg.id, trk.id)
    m.add_tracking_mtd(999, 0)
    ok, car = m.add_od_mtd(q("car"), 200, 180, 40, 40, 0.9)
    ok, trk = m.add_tracking_mtd(606, 0)
    m.set_relation(GstAnalytics.RelTypes.RELATE_TO, car.id, trk.id)
    m.add_one_cls_mtd(0.5, q("someone-elses"))


def read_back(buf):
    """(verdict object id or None, {tracking id: [(class, level)]}, cls mtds seen) of a buffer."""
    meta = buf.get_custom_meta(META)
    vid = meta.get_structure().get_value("object-id") if meta is not None else None
    m = GstAnalytics.buffer_get_analytics_relation_meta(buf)
    out, cls_ids, ods, trks = {}, [], [], {}
    if m is None:
        return vid, out, 0
    any_type = GstAnalytics.MTD_TYPE_ANY
    od_type = GstAnalytics.ODMtd.get_mtd_type()
    trk_type = GstAnalytics.TrackingMtd.get_mtd_type()
    cls_type = GstAnalytics.ClsMtd.get_mtd_type()
    for i in range(64):
        ok, mtd = m.get_mtd(i, any_type)
        if not ok:
            break
        t = mtd.get_mtd_type()
        if t == od_type:
            ods.append(i)
        elif t == trk_type:
            ok, trk = m.get_tracking_mtd(i)
            trks[i] = trk.get_info().tracking_id
        elif t == cls_type:
            cls_ids.append(i)
    ours = 0
    for c in cls_ids:
        ok, cls = m.get_cls_mtd(c)
        classes = [(GLib.quark_to_string(cls.get_quark(k)), cls.get_level(k))
                   for k in range(cls.get_length())]
        if classes and classes[0][0] == "someone-elses":
            continue
        ours += 1
        related = [o for o in ods
                   if m.get_relation(o, c) & GstAnalytics.RelTypes.RELATE_TO
                   and m.get_relation(c, o) & GstAnalytics.RelTypes.RELATE_TO]
        check(len(related) == 1, f"cls mtd {c} related to one od mtd both ways: {related}")
        for o in related:
            tid = next((t for i, t in trks.items()
                        if m.get_relation(o, i) or m.get_relation(i, o)), None)
            out.setdefault(tid, []).extend(classes)
    return vid, out, ours


def overlay_draws_mtds():
    """iguardoverlay draws od mtds: a tracked person as an mtd (no ROI meta) on black frames
    gets its box drawn (pixels change on and around the box, nowhere far from it); a frame with
    no meta stays black; an od mtd of no area is not drawn."""
    box = (100, 60, 80, 120)
    p = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=RGBA,width={W},height={H},"
        "framerate=30/1 ! iguardoverlay ! appsink name=out sync=false")
    src, out = p.get_by_name("src"), p.get_by_name("out")
    p.set_state(Gst.State.PLAYING)
    for n, kind in enumerate(("mtd", "none", "no-area")):
        buf = Gst.Buffer.new_wrapped(bytes(W * H * 4))
        buf.pts = n * Gst.SECOND // 30
        m = GstAnalytics.buffer_add_analytics_relation_meta(buf)
        if kind == "mtd":
            ok, od = m.add_od_mtd(q("person"), *box, 0.8)
            ok, trk = m.add_tracking_mtd(7, 0)
            m.set_relation(GstAnalytics.RelTypes.RELATE_TO, od.id, trk.id)
        elif kind == "no-area":
            m.add_od_mtd(q("person"), 100, 60, 0, 120, 0.8)
        src.emit("push-buffer", buf)
        sample = out.emit("try-pull-sample", 10 * Gst.SECOND)
        check(sample is not None, f"overlay: frame {kind} out")
        if sample is None:
            break
        ok, info = sample.get_buffer().map(Gst.MapFlags.READ)
        data = bytes(info.data)
        sample.get_buffer().unmap(info)
        lit = {((i // 4) % W, (i // 4) // W) for i in range(0, len(data), 4)
               if any(data[i:i + 3])}
        x, y, w, h = box
        if kind == "mtd":
            mid = y + h // 2
            left = any((c, mid) in lit for c in range(x - 3, x + 4))
            right = any((c, mid) in lit for c in range(x + w - 4, x + w + 4))
            far = [pt for pt in lit if pt[1] > y + h + 4 or pt[0] < x - 4]
            check(left and right and not far,
                  f"overlay: the mtd's box is drawn (edges at row {mid}: {left}, {right}; "
                  f"{len(far)} pixels lit away from it, of {len(lit)})")
        else:
            check(not lit, f"overlay: frame {kind} stays black ({len(lit)} pixels lit)")
    src.emit("end-of-stream")
    p.set_state(Gst.State.NULL)


def main():
    Gst.init(None)
    print("analytics test on", Gst.version_string(), flush=True)
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=RGBA,width={W},height={H},"
        "framerate=30/1 ! iguardverify name=v model-type=fallback trigger-labels=person "
        f"temporal-size={CLIP} cooldown=0 async=false ! queue ! tee name=t "
        "t. ! queue ! fakesink name=a signal-handoffs=true "
        "t. ! queue ! fakesink name=b signal-handoffs=true")
    seen = {"a": [], "b": []}
    for name in seen:
        sink = pipeline.get_by_name(name)
        sink.connect("handoff", lambda _s, buf, _p, n=name: seen[n].append(read_back(buf)))
    verdicts = []
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    src = pipeline.get_by_name("src")
    for n in range(FRAMES):
        buf = Gst.Buffer.new_wrapped(bytes(W * H * 4))
        buf.pts = n * Gst.SECOND // 30
        buf.duration = Gst.SECOND // 30
        decorate(buf)
        check(src.emit("push-buffer", buf) == Gst.FlowReturn.OK, f"push {n}")
    src.emit("end-of-stream")
    while True:
        msg = bus.timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.EOS
                                     | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT)
        if msg is None:
            check(False, "EOS within 30 s")
            break
        if msg.type == Gst.MessageType.ERROR:
            check(False, f"error: {msg.parse_error()}")
            break
        if msg.type == Gst.MessageType.EOS:
            break
        s = msg.get_structure()
        if s is not None and s.get_name() == "iguard-verification":
            verdicts.append({k: s.get_value(k) for k in ("object-id", "status", "frames",
                                                         "score", "label")})
    stats = pipeline.get_by_name("v").get_property("stats")
    pipeline.set_state(Gst.State.NULL)

    # In: clips per tracking id, and nothing for the odd mtds or the duplicate ROI meta.
    per_object = {}
    for v in verdicts:
        per_object.setdefault(v["object-id"], []).append(v)
    print("verdicts per object id:", {k: len(v) for k, v in per_object.items()})
    check(set(per_object) == set(TRACKED),
          f"verdicts for exactly the tracking ids {sorted(TRACKED)}: {sorted(per_object)}")
    for tid, vs in per_object.items():
        check(all(v["frames"] == CLIP and v["status"] == "fallback" for v in vs),
              f"object {tid}: {CLIP}-frame fallback clips: {vs}")
    counts = sorted(len(vs) for vs in per_object.values())
    check(counts and counts[0] >= 2 and counts[-1] - counts[0] <= 1,
          f"as many clips for each object (the duplicate counted once): {counts}")

    # Out: on each branch, every attached verdict of an mtd object has its classification mtd.
    for name, frames in seen.items():
        check(len(frames) == FRAMES, f"{name}: {len(frames)} buffers of {FRAMES}")
        attached = 0
        for n, (vid, classes, ours) in enumerate(frames):
            if vid is None:
                check(ours == 0, f"{name} frame {n}: a cls mtd without a verdict")
                continue
            attached += 1
            check(ours == 1, f"{name} frame {n}: one cls mtd for verdict on {vid}: {ours}")
            check(set(classes) == {vid}, f"{name} frame {n}: cls on object {vid}: {classes}")
            for cls_name, level in classes.get(vid, []):
                check(cls_name in ("iguard-fallback", "person")
                      and 0.0 <= level <= 1.0 and not math.isnan(level),
                      f"{name} frame {n}: class {cls_name} {level}")
            check(any(c == "iguard-fallback" for c, _ in classes.get(vid, [])),
                  f"{name} frame {n}: the status as a class: {classes}")
        print(f"{name}: {attached} verdicts attached")
        check(attached >= len(TRACKED), f"{name}: verdicts attached: {attached}")
    overlay_draws_mtds()
    if failures:
        print(f"analytics test: {len(failures)} failure(s)")
        return 1
    print("analytics test passed: GstAnalytics mtds in (3 tracked objects, duplicates and odd "
          "mtds) and classification mtds out, through queue and tee; iguardoverlay draws mtds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
