# SPDX-License-Identifier: MIT OR Apache-2.0
"""Tests of the committed verifier model, with ONNX Runtime and numpy only (no JAX, no footage).

    python models/verifier/test_verifier.py [--model models/verifier/verifier.onnx]

- The graph has the project's TAO I/O: `input_rgb` [batch, 3, 16, 112, 112] float32 and
  `fc_pred` [batch, 2], and its labels file says class 0 `false-detection`, class 1 `person`.
- ONNX Runtime's logits and score on the committed held-out fixture clips (fixture.npz: one clip
  of a person track, one of a false detection, cut by dataset.py from the last 40 % of the
  footage) equal JAX's own output for the trained weights (reference.json) within 1e-4.
- The fixture belongs to this model: reference.json names the model's sha256.
- The score separates the two fixture clips at the element's default threshold (0.7).

Prints `N passed, N failed` and exits non-zero on any failure.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOLERANCE = 1e-4


def run_model(path, clips):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    x = (clips.astype(np.float32) - np.float32(127.5)) * np.float32(1.0 / 127.5)
    x = np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))
    return sess, sess.run(["fc_pred"], {"input_rgb": x})[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(HERE, "verifier.onnx"))
    ap.add_argument("--reference", default=os.path.join(HERE, "reference.json"))
    ap.add_argument("--fixture", default=os.path.join(HERE, "fixture.npz"))
    a = ap.parse_args()

    with open(a.reference) as f:
        ref = json.load(f)
    clips = np.load(a.fixture)["clips"]
    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")

    with open(a.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    check("reference.json was made from this model", sha == ref["model_sha256"],
          f"model sha256 {sha[:16]}, reference {ref['model_sha256'][:16]}")

    sess, logits = run_model(a.model, clips)
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    check("TAO input", inp.name == "input_rgb" and inp.shape[1:] == [3, 16, 112, 112]
          and inp.type == "tensor(float)", f"{inp.name} {inp.shape} {inp.type}")
    check("TAO output", out.name == "fc_pred" and out.shape[1:] == [2], f"{out.name} {out.shape}")
    with open(os.path.join(HERE, "labels.txt")) as f:
        labels = f.read().split()
    check("labels", labels == ["false-detection", "person"], repr(labels))

    want = np.array(ref["logits"], np.float64)
    diff = float(np.abs(logits.astype(np.float64) - want).max())
    check(f"ONNX Runtime logits equal JAX's within {TOLERANCE}", diff <= TOLERANCE,
          f"max |difference| {diff:.2e}")
    e = np.exp(logits - logits.max(1, keepdims=True))
    scores = (e / e.sum(1, keepdims=True))[:, 1]
    sdiff = float(np.abs(scores - np.array(ref["scores"])).max())
    check(f"ONNX Runtime scores equal JAX's within {TOLERANCE}", sdiff <= TOLERANCE,
          f"scores {np.round(scores, 5).tolist()}, max |difference| {sdiff:.2e}")
    kinds = [c["label"] for c in ref["clips"]]
    check("fixture holds a held-out person clip and a false-detection clip",
          kinds == ["person", "false-detection"] and clips.shape == (2, 16, 112, 112, 3)
          and clips.dtype == np.uint8, f"{kinds}, {clips.shape} {clips.dtype}")
    check("person clip verified and false detection rejected at 0.7",
          scores[0] >= 0.7 > scores[1], f"{scores[0]:.4f} / {scores[1]:.4f}")

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
