# SPDX-License-Identifier: MIT OR Apache-2.0
"""Tests of the backbone built from the package (numpy, onnx and ONNX Runtime only).

    python models/backbone/test_backbone.py --pth .cache/backbone/fight_detection/model_16_m3_0.8888.pth

- pth.py reads the checkpoint: the 122 entries of torchvision's mc3_18 state dict with their
  shapes, and refuses a pickle that names any other global (it would run code).
- build.py is deterministic: building the same graph twice gives the same sha256.
- ONNX Runtime on the committed held-out clips (models/verifier/fixture.npz) equals PyTorch's
  own mc3_18 (reference.json, made by reference.py in a development venv) within 1e-4: the
  512-d pooled features and the fight logits.
- The verifier graph (backbone + the committed head.json) gives the head's p(person) on
  PyTorch's features within 1e-4.
- The fast cut (build.py --cut fast, the demo's model): its features equal PyTorch's mc3_18 on
  PyTorch's own cut of the clips (reference.json `fast_features`) within 1e-4; its verifier graph
  (+ head-fast.json) gives that head's p(person) on them within 1e-4 (and its logit within 1e-3),
  and builds to the same sha256 twice. head-fast.json adds the pose cue (--pose-tflite, --schema):
  the head's logit is taken on PyTorch's features and TFLite's presence logits
  (models/pose/reference.json), so the graph is checked against both source frameworks.
- The element's I/O: `input_rgb` [batch, 3, 16, 112, 112] float32, `fc_pred` [batch, 2].

Prints `N passed, N failed` and exits non-zero on any failure.
"""

import argparse
import hashlib
import io
import json
import os
import pickle
import sys
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build  # noqa: E402
import features as F  # noqa: E402
import pth  # noqa: E402
import train_head  # noqa: E402

TOLERANCE = 1e-4


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pth", required=True)
    ap.add_argument("--reference", default=os.path.join(HERE, "reference.json"))
    ap.add_argument("--fixture", default=os.path.join(HERE, "..", "verifier", "fixture.npz"))
    ap.add_argument("--pose-tflite", help="the pose cue's model, for a head-fast.json with a pose entry")
    ap.add_argument("--schema", help="with --pose-tflite: TFLite's schema module")
    a = ap.parse_args()
    results = []
    pose = None
    if a.pose_tflite:
        pose = build.load_pose(a.pose_tflite, a.schema)

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")

    with open(a.reference) as f:
        ref = json.load(f)
    check("reference.json was made from this checkpoint", F.file_sha(a.pth) == ref["pth_sha256"],
          f"{F.file_sha(a.pth)[:16]} vs {ref['pth_sha256'][:16]}")
    state = pth.load_state_dict(a.pth)
    want = {"stem.0.weight": (64, 3, 3, 7, 7), "layer1.0.conv1.0.weight": (64, 64, 3, 3, 3),
            "layer2.0.conv1.0.weight": (128, 64, 1, 3, 3), "layer4.1.conv2.0.weight": (512, 512, 1, 3, 3),
            "layer4.0.downsample.0.weight": (512, 256, 1, 1, 1), "fc.weight": (2, 512)}
    check("pth.py reads mc3_18's state dict", len(state) == 122 and all(
        state[k].shape == s and state[k].dtype == np.float32 for k, s in want.items()),
        f"{len(state)} entries")

    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": _Evil()}, protocol=2))
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "evil.pth")
        with open(p, "wb") as f:
            f.write(evil.getvalue())
        try:
            pth.load_state_dict(p)
            refused = ""
        except pickle.UnpicklingError as e:
            refused = str(e)
        check("pth.py refuses a pickle naming another global", "posix.system" in refused
              or "os.system" in refused, refused or "it loaded")

        outs = []
        for i in range(2):
            out = os.path.join(tmp, f"fight-{i}.onnx")
            with open(out, "wb") as f:
                f.write(build.build(state, "fight", source=ref["pth_sha256"]).SerializeToString())
            outs.append(F.file_sha(out))
        check("building the graph twice gives the same sha256", outs[0] == outs[1],
              f"{outs[0][:16]} / {outs[1][:16]}")
        feats_path = os.path.join(tmp, "features.onnx")
        with open(feats_path, "wb") as f:
            f.write(build.build(state, "features", source=ref["pth_sha256"]).SerializeToString())

        clips = np.load(a.fixture)["clips"]
        check("reference.json was made from the committed fixture",
              hashlib.sha256(clips.tobytes()).hexdigest() == ref["fixture_sha256"])
        x = (clips.astype(np.float32) - np.float32(127.5)) * np.float32(1.0 / 127.5)
        x = np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))
        sess, logits = F.run_once(os.path.join(tmp, "fight-0.onnx"), x, "fc_pred", threads=2)
        inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
        check("element input", inp.name == "input_rgb" and inp.shape == ["batch", 3, 16, 112, 112]
              and inp.type == "tensor(float)", f"{inp.name} {inp.shape} {inp.type}")
        check("element output", out.name == "fc_pred" and out.shape == ["batch", 2], f"{out.name} {out.shape}")
        d = float(np.abs(logits - np.array(ref["fight_logits"])).max())
        check(f"fight logits equal PyTorch's within {TOLERANCE}", d <= TOLERANCE, f"max |difference| {d:.2e}")
        _, feats = F.run_once(feats_path, x, "features", threads=2)
        fr = np.array(ref["features"])
        d = float(np.abs(feats - fr).max())
        check(f"pooled features equal PyTorch's within {TOLERANCE}", feats.shape == fr.shape == (len(clips), 512)
              and d <= TOLERANCE, f"max |difference| {d:.2e} (features up to {np.abs(fr).max():.2f})")

        # The accurate verifier (build.py verifier: backbone + the committed head) against the
        # head applied to PyTorch's features: p(person) within 1e-4.
        with open(os.path.join(HERE, "head.json")) as f:
            head = json.load(f)
        ver = os.path.join(tmp, "verifier.onnx")
        with open(ver, "wb") as f:
            f.write(build.build(state, "verifier", head, ref["pth_sha256"]).SerializeToString())
        _, vl = F.run_once(ver, x, "fc_pred", threads=2)
        e = np.exp(vl - vl.max(1, keepdims=True))
        got = (e / e.sum(1, keepdims=True))[:, 1]
        want_p = 1.0 / (1.0 + np.exp(-train_head.head_logits(head, fr)))
        d = float(np.abs(got - want_p).max())
        check(f"the verifier graph's p(person) equals the head on PyTorch's features within {TOLERANCE}",
              d <= TOLERANCE, f"{np.round(got, 5).tolist()}, max |difference| {d:.2e}")

        # The fast cut: features against PyTorch's on PyTorch's own cut, then the demo's graph.
        fast_feats = os.path.join(tmp, "fast-features.onnx")
        with open(fast_feats, "wb") as f:
            f.write(build.build(state, "features", source=ref["pth_sha256"], cut="fast").SerializeToString())
        check("reference.json's fast cut is build.py's",
              ref["fast_cut"] == {"frames": list(build.CUTS["fast"][0]), "pool": build.CUTS["fast"][1]},
              f"{ref['fast_cut']} vs {build.CUTS['fast']}")
        _, ff = F.run_once(fast_feats, x, "features", threads=2)
        fr_fast = np.array(ref["fast_features"])
        d = float(np.abs(ff - fr_fast).max())
        check(f"fast cut: pooled features equal PyTorch's within {TOLERANCE}",
              ff.shape == fr_fast.shape == (len(clips), 512) and d <= TOLERANCE, f"max |difference| {d:.2e}")
        with open(os.path.join(HERE, "head-fast.json")) as f:
            head_fast = json.load(f)
        check("head-fast.json was fitted on the fast cut", head_fast.get("cut") == "fast", str(head_fast.get("cut")))
        shas = []
        for i in range(2):
            p = os.path.join(tmp, f"fast-verifier-{i}.onnx")
            with open(p, "wb") as f:
                f.write(build.build(state, "verifier", head_fast, ref["pth_sha256"], pose=pose).SerializeToString())
            shas.append(F.file_sha(p))
        check("the fast verifier builds to the same sha256 twice", shas[0] == shas[1],
              f"{shas[0][:16]} / {shas[1][:16]}")
        sess, vl = F.run_once(os.path.join(tmp, "fast-verifier-0.onnx"), x, "fc_pred", threads=2)
        inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
        check("fast verifier: the element's I/O", inp.name == "input_rgb"
              and inp.shape == ["batch", 3, 16, 112, 112] and out.name == "fc_pred" and out.shape == ["batch", 2],
              f"{inp.name} {inp.shape} -> {out.name} {out.shape}")
        e = np.exp(vl - vl.max(1, keepdims=True))
        got = (e / e.sum(1, keepdims=True))[:, 1]
        cue = None
        if head_fast.get("pose"):
            with open(os.path.join(HERE, "..", "pose", "reference.json")) as f:
                pref = json.load(f)
            check("the pose reference was made on these clips",
                  pref["fixture_sha256"] == hashlib.sha256(clips.tobytes()).hexdigest(), pref["fixture_sha256"][:16])
            cue = train_head.pose_cue(pref["presence_logit"], head_fast["pose"]["tiles"], pref["tiles"])
        want_z = train_head.head_logits(head_fast, fr_fast, cue)
        want_p = 1.0 / (1.0 + np.exp(-want_z))
        dz = float(np.abs((vl[:, 1] - vl[:, 0]) - want_z).max())
        check("the fast verifier graph's logit equals head-fast's within 1e-3", dz <= 1e-3, f"max |difference| {dz:.2e}")
        d = float(np.abs(got - want_p).max())
        check(f"the fast verifier graph's p(person) equals head-fast on PyTorch's fast features within {TOLERANCE}",
              d <= TOLERANCE, f"{np.round(got, 5).tolist()}, max |difference| {d:.2e}")
        check("the fast verifier separates the fixture's person and false-detection clips at 0.7",
              got[0] >= 0.7 > got[1], f"{np.round(got, 4).tolist()}")

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
