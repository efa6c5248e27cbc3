#!/usr/bin/python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""A Python application reading iguardverify's verdicts two ways: the iguard-verification bus
messages (every verdict, as soon as it exists) and the IGuardVerificationMeta on the buffers
leaving each iguardverify (a pad probe), then the final stats of each element.

Needs: Debian's /usr/bin/python3 with PyGObject (python3-gi, gir1.2-gstreamer-1.0); the plugin
       built (cargo build) and found through GST_PLUGIN_PATH (default: this repository's
       target/debug or target/release); for the default pipeline, optionally
       models/tiny-action.onnx and ONNX Runtime (ORT_DYLIB_PATH) as for replay-demo.sh.
Run here: yes, on Debian 12 x86_64 without a GPU (tests/pipelines.rs runs it with
          IGUARD_NUM_BUFFERS=45, and with a failing pipeline to check the exit status).

Usage:
    pipelines/verdicts.py                       # the replay demo
    pipelines/verdicts.py 'videotestsrc ! ... ! iguardverify ! ... ! fakesink'
    pipelines/verdicts.py --timeout 600 'nvurisrcbin uri=... ! ... ! iguardverify ! ...'

Exits 0 at EOS; 1 on a pipeline error or when no EOS comes within --timeout seconds; 2 when
the plugin or the pipeline description cannot be loaded.

PyGObject reaches only the first meta of a name on a buffer (gst_buffer_get_custom_meta), so
for buffers carrying several sources (a DeepStream batch) the probe prints one verdict per
buffer and the bus messages are the complete record.
"""

import argparse
import os
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

META = "IGuardVerificationMeta"
MESSAGE = "iguard-verification"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_print_lock = threading.Lock()


def say(line):
    """Prints a whole line at once: the pad probe runs on the streaming thread, beside the bus
    loop, and print() may write a line and its newline separately."""
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def find_plugin_dir():
    """The newer of this repository's release and debug builds, if any."""
    best = None
    for profile in ("release", "debug"):
        lib = os.path.join(ROOT, "target", profile, "libgstiguard.so")
        if os.path.exists(lib) and (best is None or os.path.getmtime(lib) > os.path.getmtime(best)):
            best = lib
    return os.path.dirname(best) if best else None


def default_description(num_buffers):
    """The replay demo (see replay-demo.sh), with the tiny model when it is there, played in
    real time (sync=true) like a camera, so verdicts ride on the buffers that follow."""
    caps = "video/x-raw,width=320,height=240,framerate=30/1"
    detections = os.path.join(ROOT, "tests", "data", "demo-detections.txt")
    model = os.path.join(ROOT, "models", "tiny-action.onnx")
    model_props = ""
    if os.path.exists(model):
        labels = os.path.join(ROOT, "models", "tiny-action.labels.txt")
        model_props = f'model-path="{model}" labels-file="{labels}" positive-classes=armed'
    return (
        f"compositor name=mix sink_1::xpos=128 sink_1::ypos=116 ! {caps} "
        f'! iguardreplay location="{detections}" '
        f"! iguardverify name=v cooldown=0 {model_props} ! fakesink sync=true "
        f"videotestsrc num-buffers={num_buffers} pattern=ball ! {caps} ! mix. "
        f"videotestsrc num-buffers={num_buffers} pattern=red "
        "! video/x-raw,width=48,height=40,framerate=30/1 ! mix."
    )


def describe(s):
    """One line for a verdict structure (bus message or meta)."""
    status = s.get_value("status")
    line = (
        f"#{s.get_value('request-id')} source {s.get_value('source-id')} "
        f"pad {s.get_value('pad-index')}: {status:<8} score {s.get_value('score'):.3f} "
        f"(threshold {s.get_value('threshold'):.2f}) label {s.get_value('label') or '-'}, "
        f"trigger {s.get_value('trigger-label')} {s.get_value('trigger-confidence'):.2f}, "
        f"{s.get_value('frames')} frames, scorer {s.get_value('scorer')}"
    )
    reason = s.get_value("reason")
    return line + (f", reason {reason}" if reason else "")


def stats_line(s):
    counts = " ".join(
        f"{k}={s.get_value(k)}"
        for k in ("submitted", "verified", "rejected", "fallback", "timed-out", "dropped",
                  "failed", "pending")
    )
    return (
        f"{counts}; scorer {s.get_value('scorer')}, pool {s.get_value('pool')}, "
        f"model-instance-id {s.get_value('model-instance-id') or '-'}, "
        f"instance-users {s.get_value('instance-users')}"
    )


def iguard_elements(pipeline):
    """Every iguardverify in the pipeline, bins included."""
    found = []
    it = pipeline.iterate_recurse()
    while True:
        res, element = it.next()
        if res == Gst.IteratorResult.DONE:
            break
        if res == Gst.IteratorResult.RESYNC:
            it.resync()
            found.clear()
            continue
        if res != Gst.IteratorResult.OK:
            break
        factory = element.get_factory()
        if factory is not None and factory.get_name() == "iguardverify":
            found.append(element)
    return sorted(found, key=lambda e: e.get_name())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("description", nargs="*",
                        help="gst-launch-1.0 pipeline description (default: the replay demo)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for EOS (default 60)")
    args = parser.parse_args()

    if not os.environ.get("GST_PLUGIN_PATH"):
        plugin_dir = find_plugin_dir()
        if plugin_dir:
            os.environ["GST_PLUGIN_PATH"] = plugin_dir
    Gst.init(None)
    if Gst.ElementFactory.find("iguardverify") is None:
        print(f"iguardverify not found (GST_PLUGIN_PATH={os.environ.get('GST_PLUGIN_PATH')}); "
              "build the plugin with cargo build", file=sys.stderr)
        return 2

    num_buffers = int(os.environ.get("IGUARD_NUM_BUFFERS", "90"))
    description = " ".join(args.description) or default_description(num_buffers)
    print(f"pipeline: {description}", file=sys.stderr)
    try:
        pipeline = Gst.parse_launch(description)
    except gi.repository.GLib.Error as e:
        print(f"cannot build the pipeline: {e.message}", file=sys.stderr)
        return 2
    elements = iguard_elements(pipeline)
    if not elements:
        print("the pipeline has no iguardverify", file=sys.stderr)
        return 2

    from_meta = []

    def probe(_pad, info, name):
        buf = info.get_buffer()
        meta = buf.get_custom_meta(META) if buf is not None else None
        if meta is not None:
            s = meta.get_structure()
            from_meta.append(s.get_value("request-id"))
            pts = "none" if buf.pts == Gst.CLOCK_TIME_NONE else f"{buf.pts / Gst.SECOND:.3f}s"
            say(f"meta {name} on buffer pts {pts}: {describe(s)}")
        return Gst.PadProbeReturn.OK

    for e in elements:
        e.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe, e.get_name())

    bus = pipeline.get_bus()
    rc = 0
    from_bus = 0
    pipeline.set_state(Gst.State.PLAYING)
    deadline = time.monotonic() + args.timeout
    kinds = Gst.MessageType.ELEMENT | Gst.MessageType.EOS | Gst.MessageType.ERROR \
        | Gst.MessageType.WARNING
    while True:
        left = deadline - time.monotonic()
        msg = bus.timed_pop_filtered(int(max(left, 0) * Gst.SECOND), kinds) if left > 0 else None
        if msg is None:
            print(f"no EOS within {args.timeout:g} s", file=sys.stderr)
            rc = 1
            break
        if msg.type == Gst.MessageType.EOS:
            break
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"error from {msg.src.get_name()}: {err.message} ({debug})", file=sys.stderr)
            rc = 1
            break
        if msg.type == Gst.MessageType.WARNING:
            err, debug = msg.parse_warning()
            print(f"warning from {msg.src.get_name()}: {err.message}", file=sys.stderr)
            continue
        s = msg.get_structure()
        if s is not None and s.get_name() == MESSAGE:
            from_bus += 1
            say(f"bus  {msg.src.get_name()}: {describe(s)}")

    for e in elements:
        say(f"stats {e.get_name()}: {stats_line(e.get_property('stats'))}")
    pipeline.set_state(Gst.State.NULL)
    say(f"{from_bus} verdicts on the bus, {len(from_meta)} read from buffer metas "
        "(a verdict that completes at EOS has no later buffer to ride on)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
