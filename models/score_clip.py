#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Reference scorer: scores clips dumped by the Rust side with Python ONNX Runtime.

It applies the same preprocessing as the element's ONNX scorer, so a Rust test can compare its
scores with these to 1e-4.

Clip dump: a raw file of uint8 RGB tiles, frame-major, `frames x height x width x 3` bytes.
Several --clip paths are scored as one batch, in order.

Preprocessing, per clip:
  1. channels swapped to B, G, R if --color bgr (mean and scale then apply to the channels in
     that model order);
  2. x = (pixel - mean[c]) * scale[c], in float32;
  3. laid out per --layout: ncdhw [N,3,T,H,W], ndhwc [N,T,H,W,3] or ndchw [N,T,3,H,W].
Scoring, per clip: the activation (none, softmax over classes, or sigmoid) of the raw outputs,
then the sum of the activated outputs at the --positive class indices, clamped to [0, 1].

Prints one JSON object: {"scores": [...], "outputs": [[raw logits], ...],
"activated": [[...], ...]}, one entry per clip.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def floats(text, what):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: expected one number or three comma-separated, "
                                         f"got {text!r}")
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{what}: expected 1 or 3 values, got {len(values)}")
    return np.array(values, np.float32)


def indices(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected class indices like 1 or 1,2, got {text!r}")
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"class indices must be >= 0, got {text!r}")
    return values


def preprocess(raw, frames, height, width, layout, mean, scale, color):
    """uint8 [T*H*W*3] RGB bytes -> float32 tensor of one clip in the model layout (no N)."""
    x = raw.reshape(frames, height, width, 3)
    if color == "bgr":
        x = x[..., ::-1]
    x = (x.astype(np.float32) - mean) * scale          # [T, H, W, C], float32 throughout
    if layout == "ncdhw":
        x = x.transpose(3, 0, 1, 2)                    # [C, T, H, W]
    elif layout == "ndchw":
        x = x.transpose(0, 3, 1, 2)                    # [T, C, H, W]
    return np.ascontiguousarray(x)                     # ndhwc: [T, H, W, C]


def activate(logits, activation):
    z = logits.astype(np.float64)
    if activation == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    return z


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="ONNX model")
    ap.add_argument("--clip", action="append", required=True,
                    help="raw clip dump; repeat to score several clips as one batch")
    ap.add_argument("--frames", type=int, required=True, help="T")
    ap.add_argument("--height", type=int, required=True, help="H")
    ap.add_argument("--width", type=int, required=True, help="W")
    ap.add_argument("--layout", choices=("ncdhw", "ndhwc", "ndchw"), default="ncdhw",
                    help="model input layout (default ncdhw, TAO)")
    ap.add_argument("--mean", type=lambda t: floats(t, "--mean"), default=floats("127.5", ""),
                    help="one value or three comma-separated, in model channel order "
                         "(default 127.5)")
    ap.add_argument("--scale", type=lambda t: floats(t, "--scale"),
                    default=floats("0.00784313725490196", ""),
                    help="one value or three comma-separated, in model channel order "
                         "(default 1/127.5)")
    ap.add_argument("--color", choices=("rgb", "bgr"), default="rgb",
                    help="channel order the model expects (default rgb)")
    ap.add_argument("--activation", choices=("none", "softmax", "sigmoid"), default="softmax",
                    help="applied to the raw outputs before summing (default softmax)")
    ap.add_argument("--positive", type=indices, default=[1],
                    help="class indices whose activated outputs are summed (default 1)")
    ap.add_argument("--input-name", help="model input (default: its first input)")
    ap.add_argument("--output-name", help="model output (default: fc_pred if present, "
                                          "else its first output)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    args = ap.parse_args(argv)

    expected = args.frames * args.height * args.width * 3
    batch = []
    for path in args.clip:
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size != expected:
            sys.exit(f"{path}: {raw.size} bytes, expected {args.frames}x{args.height}x"
                     f"{args.width}x3 = {expected}")
        batch.append(preprocess(raw, args.frames, args.height, args.width, args.layout,
                                args.mean, args.scale, args.color))
    x = np.stack(batch)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(os.fspath(args.model), opts, providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in sess.get_inputs()}
    input_name = args.input_name or sess.get_inputs()[0].name
    if input_name not in inputs:
        sys.exit(f"model has no input {input_name!r} (inputs: {', '.join(inputs)})")
    declared = inputs[input_name].shape
    if len(declared) != x.ndim or any(isinstance(d, int) and d != s
                                      for d, s in zip(declared, x.shape)):
        sys.exit(f"model input {input_name} is {declared}, the clips make {list(x.shape)} "
                 f"(layout {args.layout})")
    outputs = [o.name for o in sess.get_outputs()]
    output_name = args.output_name or ("fc_pred" if "fc_pred" in outputs else outputs[0])
    if output_name not in outputs:
        sys.exit(f"model has no output {output_name!r} (outputs: {', '.join(outputs)})")

    logits = sess.run([output_name], {input_name: x})[0]
    logits = logits.reshape(logits.shape[0], -1)
    classes = logits.shape[1]
    bad = [i for i in args.positive if i >= classes]
    if bad:
        sys.exit(f"--positive {bad} out of range: the model has {classes} classes")
    activated = activate(logits, args.activation)
    scores = np.clip(activated[:, args.positive].sum(axis=1), 0.0, 1.0)
    json.dump({
        "scores": [float(s) for s in scores],
        "outputs": [[float(v) for v in row] for row in logits],
        "activated": [[float(v) for v in row] for row in activated],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
