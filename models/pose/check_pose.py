#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Development check of tflite_onnx.py on BlazePose's landmark model: the ONNX graph in
onnxruntime against the .tflite in ai_edge_litert's Interpreter (both on 1 thread).

    python models/pose/check_pose.py --schema .../ai_edge_litert/schema_py_generated.py \
        --tflite pose_landmark_full.tflite

Inputs: seeded uniform noise in [0, 1], and crops of a seeded synthetic picture (a figure of
limbs and a head over a textured background) resized to 256 x 256. Every output's largest
absolute difference must be at most --tolerance; batch 4 must give what 4 runs of batch 1 give;
an Identity_1-only graph (pruned, NHWC input) must agree with the full one; converting twice must
give the same bytes. Prints milliseconds per crop at batch 1 and 4 (no assertion on time).
Needs ai_edge_litert, which is not a run-time dependency of the project.
"""

import argparse
import hashlib
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tflite_onnx  # noqa: E402

SIZE = 256


def synthetic_picture(rng, h=480, w=640):
    """A seeded picture with smooth shading, texture and a stick figure of thick limbs."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.3 + 0.4 * xx / w, 0.5 - 0.3 * yy / h, 0.4 + 0.2 * np.sin(xx / 37.0)], -1)
    img += 0.05 * rng.standard_normal((h, w, 3)).astype(np.float32)

    def disc(cy, cx, r, colour):
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img[mask] = colour

    def limb(p, q, r, colour):
        for t in np.linspace(0.0, 1.0, 40):
            disc(p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]), r, colour)

    skin, shirt, trousers = (0.85, 0.65, 0.5), (0.2, 0.3, 0.75), (0.15, 0.15, 0.2)
    cx = w * 0.45
    limb((150, cx), (270, cx), 38, shirt)                   # torso
    limb((165, cx - 30), (240, cx - 80), 14, shirt)         # arms
    limb((240, cx - 80), (290, cx - 60), 12, skin)
    limb((165, cx + 30), (220, cx + 90), 14, shirt)
    limb((220, cx + 90), (170, cx + 120), 12, skin)
    limb((280, cx - 20), (370, cx - 35), 18, trousers)      # legs
    limb((370, cx - 35), (450, cx - 40), 15, trousers)
    limb((280, cx + 20), (370, cx + 40), 18, trousers)
    limb((370, cx + 40), (450, cx + 45), 15, trousers)
    disc(105, cx, 32, skin)                                 # head
    disc(98, cx - 11, 4, (0.1, 0.1, 0.1))
    disc(98, cx + 11, 4, (0.1, 0.1, 0.1))
    return np.clip(img, 0.0, 1.0)


def crop_resize(img, top, left, height, width):
    """Bilinear crop-and-resize to SIZE x SIZE (pixel centres), NHWC [1, SIZE, SIZE, 3]."""
    h, w, _ = img.shape
    ys = np.clip(top + (np.arange(SIZE) + 0.5) * height / SIZE - 0.5, 0, h - 1)
    xs = np.clip(left + (np.arange(SIZE) + 0.5) * width / SIZE - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top_row = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom_row = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return (top_row * (1 - fy) + bottom_row * fy)[None].astype(np.float32)


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    cases = [(f"noise{k}", rng.random((1, SIZE, SIZE, 3), dtype=np.float32)) for k in range(3)]
    img = synthetic_picture(rng)
    boxes = [(40, 110, 440, 440), (0, 80, 480, 480), (60, 200, 200, 200), (100, 0, 380, 380)]
    cases += [(f"crop{k}", crop_resize(img, *b)) for k, b in enumerate(boxes)]
    return cases


def per_operator(data, schema, conv, x, interpreter_cls, ref_resolver):
    """Each TFLite operator's ONNX nodes alone, fed TFLite's own inputs to that operator (its
    reference kernels, every tensor kept): the error of one operator, before any accumulates.
    Returns (worst absolute, worst relative to max(1, |reference|), its operator index)."""
    g = schema.ModelT.InitFromPackedBuf(data, 0).subgraphs[0]
    interp = interpreter_cls(model_content=data, num_threads=1,
                             experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=ref_resolver)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    inits = {i.name: i for i in conv.initializers}

    def tensor(i):
        array = interp.get_tensor(i)
        return array.transpose(0, 3, 1, 2) if conv.tensors[i][1] == "NCHW" else array

    worst = (0.0, 0.0, -1)
    for k, first, end in conv.spans:
        if first == end:
            continue  # folded into constants (DEQUANTIZE)
        op = g.operators[k]
        nodes = conv.nodes[first:end]
        feeds = {conv.tensors[i][0]: tensor(i) for i in op.inputs if i in conv.tensors}
        used = sorted({n for node in nodes for n in node.input if n in inits})
        out_name = conv.tensors[op.outputs[0]][0]
        graph = helper.make_graph(
            nodes, f"op{k}",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(v.shape))
             for n, v in feeds.items()],
            [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
            initializer=[inits[n] for n in used])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        got = session(model.SerializeToString()).run([out_name], feeds)[0]
        ref = tensor(op.outputs[0])
        diff = float(np.max(np.abs(got - ref)))
        rel = diff / max(1.0, float(np.max(np.abs(ref))))
        if rel > worst[1]:
            worst = (diff, rel, k)
    return worst


def check_refusals(data, schema):
    """An operator outside the supported set is refused by name, but only where an output
    needs it; an unknown output name is refused. Returns the failures."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    for code in model.operatorCodes:
        if code.builtinCode == schema.BuiltinOperator.LOGISTIC:  # presence's sigmoid -> TANH
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.TANH
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    edited = bytes(builder.Output())
    failures = []
    for outputs, needle in ((["Identity_1"], "TANH"), (["Landmarks"], "Landmarks")):
        try:
            tflite_onnx.convert(edited, schema, outputs=outputs)
            failures.append(f"outputs {outputs} of the edited model were not refused")
        except tflite_onnx.ConversionError as e:
            print(f"refused as it should be: {e}")
            if needle not in str(e):
                failures.append(f"the refusal does not name {needle}: {e}")
    try:
        tflite_onnx.convert(edited, schema, outputs=["Identity"])  # does not need the TANH
    except tflite_onnx.ConversionError as e:
        failures.append(f"Identity alone was refused: {e}")
    return failures


def session(blob):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])


def ms_per_crop(run, x, repeats):
    run(x)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(times)) / x.shape[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--schema", required=True)
    p.add_argument("--tflite", required=True)
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--floor-factor", type=float, default=4.0,
                   help="end to end, an output may differ from TFLite by this many times what "
                        "TFLite's own two kernel sets differ by (or by --tolerance)")
    p.add_argument("--repeats", type=int, default=10)
    a = p.parse_args()
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    schema = tflite_onnx.load_schema(a.schema)
    with open(a.tflite, "rb") as f:
        data = f.read()
    convs = [tflite_onnx.convert(data, schema, prefix="") for _ in range(2)]
    blobs = [tflite_onnx.to_model(c).SerializeToString() for c in convs]
    for b in blobs:
        print(f"full graph sha256 {hashlib.sha256(b).hexdigest()} ({len(b)} bytes)")
    failures = [] if blobs[0] == blobs[1] else ["two conversions differ"]
    full = session(blobs[0])
    presence = session(tflite_onnx.to_model(tflite_onnx.convert(
        data, schema, outputs=["Identity_1"], input_layout="NHWC", prefix="pose/"))
        .SerializeToString())

    def interpreter(resolver):
        interp = Interpreter(model_content=data, num_threads=1,
                             experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]["index"]
        outs = {d["name"]: d["index"] for d in interp.get_output_details()}

        def run(x):
            interp.set_tensor(inp, x)
            interp.invoke()
            return {n: interp.get_tensor(i).copy() for n, i in outs.items()}
        return run

    # AUTO: the optimised kernels and XNNPACK, what MediaPipe runs; BUILTIN_REF: the plain
    # reference kernels. How far these two are apart is float32's own noise for this network.
    run_tflite = interpreter(OpResolverType.AUTO)
    run_tflite_ref = interpreter(OpResolverType.BUILTIN_REF)
    names = [o.name for o in full.get_outputs()]

    def run_onnx(x_nhwc):
        return dict(zip(names, full.run(None, {"input_1": x_nhwc.transpose(0, 3, 1, 2)})))

    worst = {n: 0.0 for n in names}
    floor = {n: 0.0 for n in names}
    op_worst = (0.0, 0.0, -1)
    batch1 = []
    for label, x in inputs():
        ref, ref2, got = run_tflite(x), run_tflite_ref(x), run_onnx(x)
        batch1.append((x, got))
        diffs = {n: float(np.max(np.abs(ref[n] - got[n]))) for n in names}
        floors = {n: float(np.max(np.abs(ref[n] - ref2[n]))) for n in names}
        for n in names:
            worst[n] = max(worst[n], diffs[n])
            floor[n] = max(floor[n], floors[n])
        pres = presence.run(None, {"pose/input_1": x})[0]
        d_pres = float(np.max(np.abs(pres - got["Identity_1"])))
        one_op = per_operator(data, schema, convs[0], x, Interpreter, OpResolverType.BUILTIN_REF)
        if one_op[1] > op_worst[1]:
            op_worst = one_op
        print(f"{label}: presence {float(ref['Identity_1'][0, 0]):.6f}; max |ONNX - TFLite| "
              + ", ".join(f"{n} {diffs[n]:.2e}" for n in names)
              + "; |TFLite - TFLite ref| " + ", ".join(f"{floors[n]:.2e}" for n in names)
              + f"; pruned NHWC graph's presence {d_pres:.2e}; worst single operator "
              f"{one_op[0]:.2e} ({one_op[1]:.2e} relative, operator {one_op[2]})")
        if d_pres > a.tolerance:
            failures.append(f"{label}: the pruned graph's presence differs by {d_pres:.2e}")
    for n in names:
        bound = max(a.tolerance, a.floor_factor * floor[n])
        print(f"worst {n}: |ONNX - TFLite| {worst[n]:.3e}; TFLite's own kernels apart by "
              f"{floor[n]:.3e}; bound {bound:.3e}")
        if worst[n] > bound:
            failures.append(f"{n} differs by {worst[n]:.3e} > {bound:.3e}")
    if worst["Identity_1"] > a.tolerance:
        failures.append(f"presence differs by {worst['Identity_1']:.3e} > {a.tolerance}")
    print(f"worst single operator fed TFLite's own inputs: {op_worst[0]:.3e} absolute, "
          f"{op_worst[1]:.3e} relative to max(1, |output|) (operator {op_worst[2]})")
    if op_worst[1] > a.tolerance:
        failures.append(f"operator {op_worst[2]} differs by {op_worst[1]:.3e} relative")

    # 4-D outputs in NCHW: the same values, transposed.
    heat = session(tflite_onnx.to_model(tflite_onnx.convert(
        data, schema, outputs=["Identity_3"], output_layout="NCHW")).SerializeToString())
    x, got = batch1[-1]
    d_nchw = float(np.max(np.abs(heat.run(None, {"pose/input_1": x.transpose(0, 3, 1, 2)})[0]
                                 .transpose(0, 2, 3, 1) - got["Identity_3"])))
    print(f"Identity_3 alone, NCHW output: max |diff| from the full graph {d_nchw:.3e}")
    if d_nchw > a.tolerance:
        failures.append(f"the NCHW heatmap differs by {d_nchw:.3e}")
    failures += check_refusals(data, schema)

    # Batch 4 against 4 runs of batch 1.
    picks = batch1[:2] + batch1[-2:]
    x4 = np.concatenate([x for x, _ in picks])
    got4 = run_onnx(x4)
    d4 = max(float(np.max(np.abs(got4[n][k] - picks[k][1][n][0])))
             for n in names for k in range(4))
    print(f"batch 4 vs 4 x batch 1: max |diff| {d4:.3e}")
    if d4 > a.tolerance:
        failures.append(f"batch 4 differs from batch 1 by {d4:.3e}")

    x1 = batch1[-1][0].transpose(0, 3, 1, 2).copy()
    x4n = x4.transpose(0, 3, 1, 2).copy()
    run_full = lambda x: full.run(None, {"input_1": x})  # noqa: E731
    run_pres = lambda x: presence.run(None, {"pose/input_1": x.transpose(0, 2, 3, 1)})  # noqa
    print(f"ORT 1 thread, all outputs: {ms_per_crop(run_full, x1, a.repeats):.1f} ms/crop at "
          f"batch 1, {ms_per_crop(run_full, x4n, a.repeats):.1f} ms/crop at batch 4")
    print(f"ORT 1 thread, Identity_1 only: {ms_per_crop(run_pres, x1, a.repeats):.1f} ms/crop "
          f"at batch 1, {ms_per_crop(run_pres, x4n, a.repeats):.1f} ms/crop at batch 4")
    print(f"TFLite 1 thread (XNNPACK), all outputs: "
          f"{ms_per_crop(run_tflite, batch1[-1][0], a.repeats):.1f} ms/crop at batch 1")
    if failures:
        sys.exit("FAILED: " + "; ".join(failures))
    print("OK")


if __name__ == "__main__":
    main()
