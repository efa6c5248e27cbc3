#!/usr/bin/python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Reads IGuardVerificationMeta downstream of iguardverify with PyGObject, the way an
application would, and checks it against the iguard-verification bus messages.

Run with Debian's /usr/bin/python3 and GST_PLUGIN_PATH pointing at the built plugin
(`make test` does both). Exits non-zero on any failure."""

import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

META = "IGuardVerificationMeta"
FIELDS = {
    "request-id": int, "source-id": int, "pad-index": int, "status": str, "score": float,
    "threshold": float, "positive": bool, "label": str, "trigger-label": str,
    "trigger-confidence": float, "clip-start-pts": int, "clip-end-pts": int, "frames": int,
    "queue-ms": float, "processing-ms": float, "scorer": str, "reason": str,
    "object-id": int, "crop-x": int, "crop-y": int, "crop-width": int, "crop-height": int,
}
STATUSES = {"verified", "rejected", "fallback", "timeout", "dropped", "error"}


def structure_to_dict(s):
    return {name: s.get_value(name) for name in FIELDS if s.has_field(name)}


def main():
    Gst.init(None)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    detections = os.path.join(root, "tests", "data", "demo-detections.txt")
    pipeline = Gst.parse_launch(
        "videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 "
        f"! iguardreplay location={detections} ! iguardverify name=v cooldown=0 "
        "! fakesink name=sink sync=true"
    )
    from_meta = []

    def probe(_pad, info):
        buf = info.get_buffer()
        meta = buf.get_custom_meta(META)
        if meta is not None:
            from_meta.append(structure_to_dict(meta.get_structure()))
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)
    from_bus = []
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    while True:
        msg = bus.timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.ELEMENT | Gst.MessageType.EOS | Gst.MessageType.ERROR)
        if msg is None:
            fail("no EOS within 30 s")
        if msg.type == Gst.MessageType.ERROR:
            fail("pipeline error: %s" % (msg.parse_error(),))
        if msg.type == Gst.MessageType.EOS:
            break
        s = msg.get_structure()
        if s is not None and s.get_name() == "iguard-verification":
            from_bus.append(structure_to_dict(s))
    stats = pipeline.get_by_name("v").get_property("stats")
    pipeline.set_state(Gst.State.NULL)

    checks = 0
    if not from_meta:
        fail("no IGuardVerificationMeta was read downstream")
    for v in from_meta:
        for name, kind in FIELDS.items():
            if name not in v:
                fail(f"meta lacks field {name}: {v}")
            if not isinstance(v[name], kind):
                fail(f"meta field {name} is {type(v[name]).__name__}, expected {kind.__name__}")
            checks += 1
        if v["status"] not in STATUSES:
            fail(f"unknown status {v['status']!r}")
    by_id = {v["request-id"]: v for v in from_bus}
    for v in from_meta:
        if not same(by_id.get(v["request-id"]), v):
            fail(f"meta verdict {v} differs from the bus message {by_id.get(v['request-id'])}")
        checks += 1
    ok, submitted = stats.get_uint64("submitted")
    ok2, pending = stats.get_uint64("pending")
    if not (ok and ok2) or submitted != len(from_bus) or pending != 0:
        fail(f"stats {stats.to_string()} do not match {len(from_bus)} bus verdicts")
    weapon = [v for v in from_meta if v["label"] == "weapon"]
    if not weapon or not any(v["positive"] for v in weapon):
        fail(f"the clip with the weapon was not scored positive: {from_meta}")
    for v in from_meta:
        print(f"meta: request {v['request-id']} source {v['source-id']} {v['status']} "
              f"score {v['score']:.3f} label {v['label']!r} frames {v['frames']}")
    print(f"python: {len(from_meta)} verdicts read from meta, {len(from_bus)} from the bus, "
          f"{checks} checks")
    print("1 passed, 0 failed")


def same(a, b):
    """Equal field by field, two NaN scores (unscored verdicts) counting as equal."""
    if a is None or a.keys() != b.keys():
        return False
    return all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


def fail(why):
    print(f"python meta test FAILED: {why}", file=sys.stderr)
    print("0 passed, 1 failed")
    sys.exit(1)


if __name__ == "__main__":
    main()
