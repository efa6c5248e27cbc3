# SPDX-License-Identifier: MIT OR Apache-2.0
"""Tests of the pose cue built by models/backbone/build.py (numpy, onnx and ONNX Runtime only).

    python models/pose/test_pose.py --tflite .cache/pose/mediapipe/modules/pose_landmark/pose_landmark_full.tflite \
        --schema .cache/pose/ai_edge_litert/schema_py_generated.py \
        --pth .cache/backbone/fight_detection/model_16_m3_0.8888.pth

- `build.py pose` is deterministic: building the graph twice gives the same sha256.
- The element's I/O: `input_rgb` [batch, 3, 16, 112, 112] float32 -> `presence` [batch, 4], with
  metadata iguard.pose.tiles = "0,4,8,12".
- ONNX Runtime on the committed held-out clips (models/verifier/fixture.npz) equals the .tflite in
  ai_edge_litert's Interpreter fed by a numpy resize (reference.json, made by reference.py in a
  development venv): presence probabilities within 1e-4, and logits within 1e-4 wherever
  |logit| < 9. Past that the logit is not compared at 1e-4: it undoes the sigmoid, so a
  difference dp in p becomes dp / (p (1 - p)), and p (1 - p) < 1.3e-4 there, so float32 rounding
  in the ~100 layers before p (1e-8 and less) is already 1e-4 in the logit. Where the reference
  p is well past the clip (under 5e-7 or over 1 - 5e-7) both logits must be the clip's,
  log(1e-6 / (1 - 1e-6)), within 1e-4.
- The converter refuses an operator it does not know, naming it (the model's LOGISTIC opcode
  rewritten as TANH in a copy of its bytes), and refuses a schema path that does not exist.
- A verifier head with a "pose" entry: build.py verifier (fast cut + head-fast.json + a test pose
  entry on tiles 0 and 8) gives the logit train_head.head_logits(head, features,
  pose_cue(presence)) and its sigmoid as p(person) within 1e-4, from the fast features graph and
  the pose graph (the logit too, because p(person) saturates on the fixture's two clips).

Prints `N passed, N failed` and exits non-zero on any failure.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BACKBONE = os.path.join(HERE, "..", "backbone")
sys.path.insert(0, HERE)
sys.path.insert(0, BACKBONE)
import build  # noqa: E402
import features as F  # noqa: E402
import pth  # noqa: E402
import tflite_onnx  # noqa: E402
import train_head  # noqa: E402

TOLERANCE = 1e-4
# Where |logit| >= this, p (1 - p) < 1.3e-4: the logit is not compared at TOLERANCE (see above).
LOGIT_COMPARED = 9.0
# A pose entry for testing the fusion only (not a trained one).
TEST_POSE = {"fusion": "head", "weight": 0.5, "tiles": [0, 8]}


def save(model, path):
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return F.file_sha(path)


def with_opcode(data, schema, old, new):
    """A copy of the .tflite bytes with every operator code `old` rewritten as `new`."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    n = 0
    for code in model.operatorCodes:
        if code.builtinCode == old:
            code.builtinCode = code.deprecatedBuiltinCode = new
            n += 1
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tflite", required=True, help="pose_landmark_full.tflite (mediapipe 0.10.21)")
    ap.add_argument("--schema", required=True, help="ai_edge_litert/schema_py_generated.py (ai-edge-litert 2.3.0)")
    ap.add_argument("--pth", required=True, help="fight_detection/model_16_m3_0.8888.pth (the backbone)")
    ap.add_argument("--reference", default=os.path.join(HERE, "reference.json"))
    ap.add_argument("--fixture", default=os.path.join(HERE, "..", "verifier", "fixture.npz"))
    a = ap.parse_args()
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")

    with open(a.reference) as f:
        ref = json.load(f)
    data, schema = build.load_pose(a.tflite, a.schema)
    tsha = hashlib.sha256(data).hexdigest()
    check("reference.json was made from this .tflite", tsha == ref["tflite_sha256"],
          f"{tsha[:16]} vs {ref['tflite_sha256'][:16]}")
    clips = np.load(a.fixture)["clips"]
    check("reference.json was made from the committed fixture",
          hashlib.sha256(clips.tobytes()).hexdigest() == ref["fixture_sha256"])
    check("reference.json's tiles are build.py's", ref["tiles"] == list(build.POSE_TILES),
          f"{ref['tiles']} vs {list(build.POSE_TILES)}")
    x = (clips.astype(np.float32) - np.float32(127.5)) * np.float32(1.0 / 127.5)
    x = np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))

    with tempfile.TemporaryDirectory() as tmp:
        # (a) deterministic bytes
        shas = [save(build.build({}, "pose", pose=(data, schema)), os.path.join(tmp, f"pose-{i}.onnx"))
                for i in range(2)]
        check("build.py pose builds to the same sha256 twice", shas[0] == shas[1],
              f"{shas[0][:16]} / {shas[1][:16]}")
        pose_graph = os.path.join(tmp, "pose-0.onnx")

        # (d) the graph's I/O
        sess, presence = F.run_once(pose_graph, x, "presence")
        inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
        check("pose graph input", inp.name == "input_rgb" and inp.shape == ["batch", 3, 16, 112, 112]
              and inp.type == "tensor(float)", f"{inp.name} {inp.shape} {inp.type}")
        check("pose graph output", out.name == "presence" and out.shape == ["batch", 4]
              and presence.shape == (len(clips), 4), f"{out.name} {out.shape}, got {list(presence.shape)}")
        meta = sess.get_modelmeta().custom_metadata_map
        check("pose graph metadata iguard.pose.tiles", meta.get("iguard.pose.tiles") == "0,4,8,12",
              repr(meta.get("iguard.pose.tiles")))

        # (b) against the .tflite (reference.json)
        want_logit = np.array(ref["presence_logit"])
        want_p = np.array(ref["presence_p"])
        got_logit = presence.astype(np.float64)
        got_p = 1.0 / (1.0 + np.exp(-got_logit))  # the graph's clipped p, recovered in float64
        clip = ref["clip"]  # the reference's own clip: build.py's must give the same logits
        # p from the graph's logit is its clipped p; compare the clipped reference p with it.
        d = float(np.abs(got_p - np.clip(want_p, clip, 1.0 - clip)).max())
        check(f"presence probabilities equal the .tflite's within {TOLERANCE}", d <= TOLERANCE,
              f"max |difference| {d:.2e} over {want_p.size} tiles; p {np.round(got_p, 6).tolist()}")
        mid = np.abs(want_logit) < LOGIT_COMPARED
        d_mid = float(np.abs(got_logit - want_logit)[mid].max()) if mid.any() else 0.0
        d_all = float(np.abs(got_logit - want_logit).max())
        check(f"presence logits equal the .tflite's within {TOLERANCE} where |logit| < {LOGIT_COMPARED:g}",
              mid.any() and d_mid <= TOLERANCE,
              f"max |difference| {d_mid:.2e} over {int(mid.sum())} tiles (all tiles: {d_all:.2e}; "
              f"logits {np.round(got_logit, 4).tolist()})")
        # Tiles whose reference p is well past the clip (by a factor of 2, far more than the two
        # runtimes differ by): the logit is the clip's, log(clip / (1 - clip)), in both.
        past = (want_p < clip / 2) | (1.0 - want_p < clip / 2)
        d_clip = float(np.abs(got_logit - want_logit)[past].max()) if past.any() else 0.0
        check(f"past the clip ({clip:g}) the logit is the clip's, {np.log(clip / (1 - clip)):.4f}, within {TOLERANCE}",
              d_clip <= TOLERANCE, f"{int(past.sum())} tiles, max |difference| {d_clip:.2e}")

        # (c) refusals
        edited, n = with_opcode(data, schema, schema.BuiltinOperator.LOGISTIC, schema.BuiltinOperator.TANH)
        try:
            build.build({}, "pose", pose=(edited, schema))
            refused = ""
        except tflite_onnx.ConversionError as e:
            refused = str(e)
        check("an unknown operator (LOGISTIC rewritten as TANH) is refused by name",
              n > 0 and "TANH" in refused, refused or f"it converted ({n} opcodes rewritten)")
        missing = os.path.join(tmp, "no-such-dir", "schema_py_generated.py")
        try:
            tflite_onnx.load_schema(missing)
            refused = ""
        except tflite_onnx.ConversionError as e:
            refused = str(e)
        check("a schema path that does not exist is refused by name", missing in refused, refused or "it loaded")
        proc = subprocess.run([sys.executable, os.path.join(BACKBONE, "build.py"), "pose", "--pose-tflite",
                               a.tflite, "--schema", missing, "--out", os.path.join(tmp, "x.onnx")],
                              capture_output=True, text=True)
        check("build.py pose refuses it too", proc.returncode != 0 and missing in proc.stderr
              and not os.path.exists(os.path.join(tmp, "x.onnx")),
              f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")

        # (e) a verifier head with a pose entry
        state = pth.load_state_dict(a.pth)
        feats_path = os.path.join(tmp, "fast-features.onnx")
        save(build.build(state, "features", cut="fast"), feats_path)
        _, feats = F.run_once(feats_path, x, "features")
        with open(os.path.join(BACKBONE, "head-fast.json")) as f:
            head = json.load(f)
        head["pose"] = dict(TEST_POSE)
        ver = os.path.join(tmp, "pose-verifier.onnx")
        save(build.build(state, "verifier", head, cut="fast", pose=(data, schema)), ver)
        sess, vl = F.run_once(ver, x, "fc_pred")
        out = sess.get_outputs()[0]
        meta = sess.get_modelmeta().custom_metadata_map
        tiles = meta.get("iguard.pose.tiles")
        check("pose verifier: output and tiles", out.name == "fc_pred" and out.shape == ["batch", 2]
              and tiles == "0,8", f"{out.name} {out.shape}, tiles {tiles!r}")
        cue = train_head.pose_cue(presence, TEST_POSE["tiles"], train_head.pose_tiles(pose_graph))
        term = TEST_POSE["weight"] * cue
        zw = train_head.head_logits(head, feats, cue)
        # p(person) saturates on these clips, so the logit is checked too: it shows the cue's term.
        zg = (vl[:, 1] - vl[:, 0]).astype(np.float64)
        dz = float(np.abs(zg - zw).max())
        check(f"pose verifier's logit equals head_logits(head, features, pose_cue) within {TOLERANCE}",
              dz <= TOLERANCE, f"{np.round(zg, 4).tolist()} (the cue's term {np.round(term, 4).tolist()}), "
              f"max |difference| {dz:.2e}")
        e = np.exp(vl - vl.max(1, keepdims=True))
        got = (e / e.sum(1, keepdims=True))[:, 1]
        want = 1.0 / (1.0 + np.exp(-zw))
        without = 1.0 / (1.0 + np.exp(-(zw - term)))
        d = float(np.abs(got - want).max())
        check(f"pose verifier's p(person) equals their sigmoid within {TOLERANCE}", d <= TOLERANCE,
              f"{np.round(got, 5).tolist()} (without the cue {np.round(without, 5).tolist()}), "
              f"max |difference| {d:.2e}")

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
