#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Generate the ONNX action models used by iguardverify's tests, demo and benchmarks.

No pretrained weights are available, so every model is built here from the `onnx` helper API
with seeded random weights. All of them follow the I/O conventions of NVIDIA TAO
ActionRecognitionNet (3D, RGB):

  input  `input_rgb` float32 [N, 3, T, H, W] (NCDHW), pixels scaled to [-1, 1]
         (mean 127.5, scale 1/127.5)
  output `fc_pred`   float32 [N, classes], raw logits (no softmax in the graph)

N is a dynamic dimension named `batch` unless `--batch K` fixes it. Opset 17, IR version 8, so
ONNX Runtime 1.17 and newer (JetPack builds included) load them.

Models:
  tiny    3 Conv3D layers, ~0.11 GMAC at 16x112x112, a few ms per clip. Class 1 ("armed")
          also gets a hand-set term: --red-weight x the clip's mean of (R - B) - --red-offset,
          so a red clip scores "armed" high and a blue or neutral one low (for demos).
  r3d18   R3D-18 topology (stem + 4 stages x 2 BasicBlocks), ~40.7 GMAC, ~133 MB of weights.
  slow    a deliberately slow stack of full-resolution Conv3D layers for timeout tests.
  labels  a labels file matching --classes.
  bench   times models with ONNX Runtime (1 intra-op thread, batch 1 by default).

Times measured on the 2-core development machine (ONNX Runtime 1.32 CPU, 1 intra-op thread,
batch 1, 16x112x112): see models/README.md; `slow` with its defaults takes about
SLOW_TIME per clip there.
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
DEFAULT_LABELS = ["normal", "armed", "fighting", "falling"]
HERE = os.path.dirname(os.path.abspath(__file__))
# Measured `slow` time with the default options (see the README); shown in --help.
SLOW_TIME = "1.1 s (medians 1.0-1.3 s)"


def label_names(classes):
    return [DEFAULT_LABELS[i] if i < len(DEFAULT_LABELS) else f"class-{i}" for i in range(classes)]


class Net:
    """Collects nodes and seeded initializers of one graph. Tensors are named by their role."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.used = set()

    def name(self, base):
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def const(self, base, array):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, base, **attrs):
        out = self.name(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, kernel, stride=(1, 1, 1), pad=None, bias=False, gain=math.sqrt(2.0),
             base="conv"):
        """3-D convolution with He-style init: std = gain / sqrt(fan_in)."""
        if pad is None:
            pad = tuple(k // 2 for k in kernel)
        fan_in = cin * int(np.prod(kernel))
        w = self.rng.standard_normal((cout, cin, *kernel), dtype=np.float32)
        w *= np.float32(gain / math.sqrt(fan_in))
        inputs = [x, self.const(f"{base}.weight", w)]
        if bias:
            inputs.append(self.const(f"{base}.bias", np.zeros(cout, np.float32)))
        return self.node("Conv", inputs, base, kernel_shape=list(kernel), strides=list(stride),
                         pads=list(pad) * 2)

    def bn(self, x, c, gamma=1.0, base="bn"):
        """Inference-mode BatchNormalization, close to identity with a little seeded jitter."""
        g = (gamma * (1.0 + 0.05 * self.rng.standard_normal(c))).astype(np.float32)
        b = (0.05 * self.rng.standard_normal(c)).astype(np.float32)
        mean = np.zeros(c, np.float32)
        var = np.ones(c, np.float32)
        ins = [x] + [self.const(f"{base}.{k}", v) for k, v in
                     (("weight", g), ("bias", b), ("running_mean", mean), ("running_var", var))]
        return self.node("BatchNormalization", ins, base, epsilon=1e-5)

    def relu(self, x, base="relu"):
        return self.node("Relu", [x], base)

    def gemm(self, x, cin, cout, std, base="fc"):
        w = (std * self.rng.standard_normal((cout, cin))).astype(np.float32)
        b = (0.1 * self.rng.standard_normal(cout)).astype(np.float32)
        return self.node("Gemm", [x, self.const(f"{base}.weight", w), self.const(f"{base}.bias", b)],
                         base, transB=1)

    def head(self, x, cin, classes, gain=2.0):
        """GlobalAveragePool -> Flatten -> Gemm; returns the logits tensor (named out_name)."""
        x = self.node("GlobalAveragePool", [x], "avgpool")
        x = self.node("Flatten", [x], "flatten", axis=1)
        # std gain/sqrt(cin): the pooled features have an rms of about 0.5, so the logits come
        # out of order 1-10.
        return self.gemm(x, cin, classes, gain / math.sqrt(cin), base="fc")


# ----------------------------------------------------------------------------------- I/O ----

LAYOUTS = {
    # name: (input dims in terms of N, C, T, H, W; Transpose perm to NCDHW or None)
    "ncdhw": (("N", "C", "T", "H", "W"), None),
    "ndhwc": (("N", "T", "H", "W", "C"), [0, 4, 1, 2, 3]),
    "ndchw": (("N", "T", "C", "H", "W"), [0, 2, 1, 3, 4]),
}


def input_dims(args):
    n = "batch" if args.batch == "dynamic" else int(args.batch)
    values = {"N": n, "C": 3, "T": args.frames, "H": args.height, "W": args.width}
    return [values[d] for d in LAYOUTS[args.layout][0]]


def graph_input(net, args):
    """Returns the NCDHW tensor the network body starts from (after a layout Transpose)."""
    net.used.update((args.input_name, args.output_name))
    perm = LAYOUTS[args.layout][1]
    if perm is None:
        return args.input_name
    return net.node("Transpose", [args.input_name], "to_ncdhw", perm=perm)


def finish(net, args, logits, kind, doc):
    """Renames the final tensor to --output-name and wraps the graph in a model."""
    last = net.nodes[-1]
    assert last.output[0] == logits
    last.output[0] = args.output_name
    last.name = args.output_name
    n = "batch" if args.batch == "dynamic" else int(args.batch)
    graph = helper.make_graph(
        net.nodes, f"iguard_{kind}",
        [helper.make_tensor_value_info(args.input_name, TensorProto.FLOAT, input_dims(args))],
        [helper.make_tensor_value_info(args.output_name, TensorProto.FLOAT, [n, args.classes])],
        initializer=net.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="iguardverify models/generate.py", doc_string=doc)
    model.ir_version = IR_VERSION
    meta = {
        "iguard.model": kind,
        "iguard.seed": str(args.seed),
        "iguard.layout": args.layout,
        "iguard.preprocess": "rgb, mean 127.5, scale 1/127.5 (pixels to [-1, 1])",
        "iguard.labels": ",".join(label_names(args.classes)),
    }
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    return model


# -------------------------------------------------------------------------------- models ----

def build_tiny(args):
    if args.red_weight != 0 and args.classes < 2:
        sys.exit("tiny: the red path feeds class 1; use --classes >= 2 or --red-weight 0")
    net = Net(args.seed)
    x0 = graph_input(net, args)
    # 3 -> 16 -> 64 -> 128 channels. ONNX Runtime's CPU Conv3D spends most of its time unfolding
    # the input (im2col), which grows with kernel volume x input channels x output voxels, so the
    # first layer uses a 3x5x5 kernel with stride (2, 4, 4) and the wide layers come late.
    x = net.conv(x0, 3, 16, (3, 5, 5), (2, 4, 4), base="conv1")          # 16 x 8 x 28 x 28
    x = net.relu(net.bn(x, 16, base="bn1"), base="relu1")
    x = net.node("MaxPool", [x], "pool1", kernel_shape=[1, 2, 2], strides=[1, 2, 2])  # 8 x 14 x 14
    x = net.conv(x, 16, 64, (3, 3, 3), base="conv2")                      # 64 x 8 x 14 x 14
    x = net.relu(net.bn(x, 64, base="bn2"), base="relu2")
    x = net.conv(x, 64, 128, (3, 3, 3), (2, 2, 2), base="conv3")          # 128 x 4 x 7 x 7
    x = net.relu(net.bn(x, 128, base="bn3"), base="relu3")
    logits = net.head(x, 128, args.classes)
    if args.red_weight != 0:
        # Hand-set "armed" evidence: mean over T, H, W of each channel, then w * (R - B) - offset
        # added to class 1's logit through a Gemm whose other columns are zero. The offset keeps
        # neutral clips (grey, noise, natural colours) from scoring "armed".
        means = net.node("ReduceMean", [x0], "rgb_mean", axes=[2, 3, 4], keepdims=0)
        w = np.zeros((3, args.classes), np.float32)
        w[0, 1], w[2, 1] = args.red_weight, -args.red_weight
        b = np.zeros(args.classes, np.float32)
        b[1] = -args.red_offset
        red = net.node("Gemm", [means, net.const("red.weight", w), net.const("red.bias", b)],
                       "red_logit")
        logits = net.node("Add", [logits, red], "logits")
    doc = ("iguardverify tiny action model: 3 Conv3D layers with seeded random weights; class 1 "
           f"also gets {args.red_weight} * mean(R - B) - {args.red_offset} of the normalised clip.")
    return finish(net, args, logits, "tiny", doc)


def basic_block(net, x, cin, cout, stride, name):
    s = (stride,) * 3
    y = net.conv(x, cin, cout, (3, 3, 3), s, base=f"{name}.conv1")
    y = net.relu(net.bn(y, cout, base=f"{name}.bn1"), base=f"{name}.relu1")
    y = net.conv(y, cout, cout, (3, 3, 3), base=f"{name}.conv2")
    # A smaller gamma on the residual branch keeps the activations from growing block by block.
    y = net.bn(y, cout, gamma=0.5, base=f"{name}.bn2")
    if stride != 1 or cin != cout:
        x = net.conv(x, cin, cout, (1, 1, 1), s, pad=(0, 0, 0), gain=1.0,
                     base=f"{name}.downsample.conv")
        x = net.bn(x, cout, base=f"{name}.downsample.bn")
    return net.relu(net.node("Add", [y, x], f"{name}.add"), base=f"{name}.relu2")


def build_r3d18(args):
    net = Net(args.seed)
    x = graph_input(net, args)
    x = net.conv(x, 3, 64, (3, 7, 7), (1, 2, 2), base="stem.conv")
    x = net.relu(net.bn(x, 64, base="stem.bn"), base="stem.relu")
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            x = basic_block(net, x, cin, cout, stride, f"layer{stage}.{block}")
            cin = cout
    logits = net.head(x, 512, args.classes, gain=5.0)
    doc = "iguardverify R3D-18-shaped action model with seeded random weights (not trained)."
    return finish(net, args, logits, "r3d18", doc)


def build_slow(args):
    net = Net(args.seed)
    x = graph_input(net, args)
    c = args.channels
    x = net.conv(x, 3, c, (3, 3, 3), base="conv0")
    x = net.relu(net.bn(x, c, base="bn0"), base="relu0")
    for i in range(1, args.depth + 1):
        x = net.conv(x, c, c, (3, 3, 3), base=f"conv{i}")
        x = net.relu(net.bn(x, c, base=f"bn{i}"), base=f"relu{i}")
    x = net.node("AveragePool", [x], "pool", kernel_shape=[2, 2, 2], strides=[2, 2, 2])
    logits = net.head(x, c, args.classes, gain=5.0)
    doc = (f"iguardverify slow model: {args.depth + 1} full-resolution Conv3D layers of {c} "
           "channels with seeded random weights, for timeout tests.")
    return finish(net, args, logits, "slow", doc)


# ----------------------------------------------------------------------------- reporting ----

def gmacs(model):
    """Multiply-accumulates per clip of the Conv and Gemm nodes, from ONNX shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                           for d in vi.type.tensor_type.shape.dim]
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            total += int(np.prod(out[2:])) * int(np.prod(weights[node.input[1]]))
        elif node.op_type == "Gemm" and node.input[1] in weights:
            total += int(np.prod(weights[node.input[1]]))
    return total / 1e9


def dims_text(value_info):
    return "[" + ", ".join(d.dim_param or str(d.dim_value)
                           for d in value_info.type.tensor_type.shape.dim) + "]"


def save(model, path):
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    g = gmacs(model)
    onnx.save_model(model, path)  # weights inline: every model here is far below 2 GB
    onnx.checker.check_model(path, full_check=True)
    size = os.path.getsize(path)
    print(f"{path}\n  input  {model.graph.input[0].name} {dims_text(model.graph.input[0])}"
          f"\n  output {model.graph.output[0].name} {dims_text(model.graph.output[0])}"
          f"\n  {g:.4g} GMAC per clip, {size / 1e6:.1f} MB")


def bench(args):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    print(f"ONNX Runtime {ort.__version__}, CPU, {os.cpu_count()} cores")
    for path in args.models:
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = [args.batch if not isinstance(d, int) else d for d in inp.shape]
        x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
        for _ in range(args.warmup):
            sess.run(None, {inp.name: x})
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            sess.run(None, {inp.name: x})
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print(f"{path}: input {shape}, {args.threads} thread(s): median {np.median(times):.1f} ms, "
              f"min {times[0]:.1f} ms, max {times[-1]:.1f} ms over {args.runs} runs")


# ---------------------------------------------------------------------------------- main ----

def batch_arg(text):
    if text == "dynamic":
        return text
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'dynamic' or a positive integer, got {text!r}")
    if k < 1:
        raise argparse.ArgumentTypeError(f"batch must be >= 1, got {k}")
    return str(k)


def positive(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def model_options(p, kind):
    p.add_argument("--frames", type=positive, default=16, help="T (default 16)")
    p.add_argument("--height", type=positive, default=112, help="H (default 112)")
    p.add_argument("--width", type=positive, default=112, help="W (default 112)")
    p.add_argument("--batch", type=batch_arg, default="dynamic",
                   help="'dynamic' (a dim named 'batch', the default) or a fixed K")
    p.add_argument("--classes", type=positive, default=4, help="output classes (default 4)")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="ncdhw",
                   help="input layout: ncdhw [N,3,T,H,W] (TAO, default), ndhwc [N,T,H,W,3], "
                        "ndchw [N,T,3,H,W] (a Transpose at the input makes it real)")
    p.add_argument("--input-name", default="input_rgb", help="default input_rgb")
    p.add_argument("--output-name", default="fc_pred", help="default fc_pred")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    p.add_argument("--out", default=os.path.join(HERE, f"{kind}-action.onnx"),
                   help=f"output path (default models/{kind}-action.onnx)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.replace("SLOW_TIME", SLOW_TIME),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tiny", help="3 Conv3D layers, ~0.11 GMAC, a few ms per clip")
    model_options(p, "tiny")
    p.add_argument("--red-weight", type=float, default=4.0,
                   help="weight of mean(R - B) (normalised pixels) in class 1's logit "
                        "(default 4; 0 disables the red path)")
    p.add_argument("--red-offset", type=float, default=2.0,
                   help="subtracted from class 1's logit with the red path (default 2)")

    p = sub.add_parser("r3d18", help="R3D-18 topology, ~40.7 GMAC, ~133 MB")
    model_options(p, "r3d18")

    p = sub.add_parser("slow", help=f"full-resolution Conv3D stack, ~{SLOW_TIME} per clip here",
                       description="A deliberately slow model for timeout tests. With the defaults "
                       f"it takes about {SLOW_TIME} per clip on the 2-core development machine "
                       "(ONNX Runtime 1.32 CPU, 1 intra-op thread, batch 1, 16x112x112).")
    model_options(p, "slow")
    p.add_argument("--depth", type=positive, default=16,
                   help="number of C->C 3x3x3 layers after the first one (default 16)")
    p.add_argument("--channels", type=positive, default=16, help="channels C (default 16)")

    p = sub.add_parser("labels", help="write a labels file, one class name a line")
    p.add_argument("--classes", type=positive, default=4, help="number of classes (default 4)")
    p.add_argument("--out", default=os.path.join(HERE, "labels.txt"),
                   help="output path (default models/labels.txt)")

    p = sub.add_parser("bench", help="time models with ONNX Runtime")
    p.add_argument("models", nargs="+", help="ONNX files")
    p.add_argument("--threads", type=positive, default=1, help="intra-op threads (default 1)")
    p.add_argument("--batch", type=positive, default=1, help="batch for dynamic models (default 1)")
    p.add_argument("--runs", type=positive, default=5, help="timed runs (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")

    args = ap.parse_args(argv)
    if args.command == "labels":
        path = os.path.abspath(args.out)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(name + "\n" for name in label_names(args.classes)))
        print(f"{path}\n  {args.classes} labels, {os.path.getsize(path)} bytes")
    elif args.command == "bench":
        bench(args)
    else:
        builder = {"tiny": build_tiny, "r3d18": build_r3d18, "slow": build_slow}[args.command]
        save(builder(args), args.out)


if __name__ == "__main__":
    main()
