#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Checks the SSDLite person detector that tf2onnx converted (upstream.mk) and names its outputs
for GStreamer's `ssdobjectdetector`.

    upstream_ssd.py IN.onnx OUT.onnx [--frame FRAME.npy]

What GStreamer 1.26's ONNX elements expect, read in its source (gst-plugins-bad 1.26.2,
ext/onnx/gstonnxclient.cpp and gst/tensordecoders/gstssdobjectdetector.c):
- `onnxinference` feeds input 0; with the default `input-image-format=hwc` it reads the input's
  shape as [batch, height, width, channels]. Dimensions of unknown size (here all but the
  channels, 3) leave the frame size free: the frame is fed as the caps give it, and the graph's
  own preprocessor resizes it to 300x300. A uint8 input with 3 channels restricts the caps to
  RGB. Outputs must be float32 or int32.
- Each output gets a tensor id from the model's custom metadata, key = the output's name; with
  no such entry, names starting with detection_boxes, detection_scores, detection_classes and
  num_detections are taken as `Gst.Model.ObjectDetector.{Boxes,Scores,Classes,NumDetections}`.
  This script writes those entries, so the ids do not rest on the name fallback.
- `ssdobjectdetector` takes the tensor meta with 3 or 4 of those ids; it reads num_detections[0]
  and, per detection, the score, the box as [ymin, xmin, ymax, xmax] (normalised) and, with a
  `label-file`, line `class` of that file as the label (the class of this model's person is 1).
  It reads the scores with the num_detections tensor's data type, so both must be float32.
Exits non-zero with a message naming the value when the model is not so."""

import argparse
import sys

import numpy as np
import onnx

IDS = {
    "detection_boxes": "Gst.Model.ObjectDetector.Boxes",
    "detection_scores": "Gst.Model.ObjectDetector.Scores",
    "detection_classes": "Gst.Model.ObjectDetector.Classes",
    "num_detections": "Gst.Model.ObjectDetector.NumDetections",
}
FLOAT, UINT8 = onnx.TensorProto.FLOAT, onnx.TensorProto.UINT8


def fail(msg):
    sys.exit(f"upstream_ssd.py: {msg}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--frame", help="an RGB frame (HxWx3 uint8, .npy) to run the model on")
    a = p.parse_args()
    m = onnx.load(a.src)
    if len(m.graph.input) != 1:
        fail(f"{len(m.graph.input)} inputs, expected 1 (image_tensor:0)")
    inp = m.graph.input[0]
    t = inp.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
    if t.elem_type != UINT8 or len(dims) != 4 or dims[3] != 3:
        fail(f"input {inp.name}: type {t.elem_type}, shape {dims}; expected uint8 [N,H,W,3]")
    outs = {}
    for o in m.graph.output:
        base = o.name.split(":")[0]
        if base not in IDS:
            fail(f"output {o.name} is none of {sorted(IDS)}")
        if o.type.tensor_type.elem_type != FLOAT:
            fail(f"output {o.name} has type {o.type.tensor_type.elem_type}, expected float32")
        outs[o.name] = IDS[base]
    if len(outs) != 4:
        fail(f"outputs {sorted(outs)}, expected the four of {sorted(IDS)}")
    del m.metadata_props[:]
    for name, tid in outs.items():
        onnx.helper.set_model_props(m, {**{p.key: p.value for p in m.metadata_props}, name: tid})
    onnx.checker.check_model(m)
    onnx.save(m, a.dst)
    print(f"{a.dst}: input {inp.name} uint8 {dims}; outputs " +
          ", ".join(f"{n} -> {i}" for n, i in outs.items()))
    if a.frame:
        import onnxruntime as ort

        s = ort.InferenceSession(a.dst, providers=["CPUExecutionProvider"])
        frame = np.load(a.frame)
        res = dict(zip([o.name for o in s.get_outputs()], s.run(None, {inp.name: frame[None]})))
        n = int(res["num_detections:0"][0])
        scores = res["detection_scores:0"][0][:n]
        classes = res["detection_classes:0"][0][:n]
        keep = scores >= 0.3
        print(f"frame {frame.shape}: {n} detections, {int(keep.sum())} at score >= 0.3, "
              f"classes {sorted(set(classes[keep].astype(int).tolist()))}")
        if not keep.any():
            fail("no detection at score >= 0.3 on the check frame")


if __name__ == "__main__":
    main()
