# SPDX-License-Identifier: MIT OR Apache-2.0
"""Held-out figures of the verifier: what Stage 2 does to Stage 1's alarms on the last 40 % of
vtest.avi.

    python models/verifier/eval.py --model models/verifier/verifier.onnx \
        --data .cache/verifier [--json OUT] [--check models/verifier/figures.json]

Needs only numpy and onnxruntime (the project venv). The clips are the ones the element makes
(clip-per=object, built-in tracking, defaults), cut by dataset.py; each is scored as the element
scores it with its defaults: softmax over the two classes, and the score is the sum over every
class but class 0, i.e. p(person). A clip is `verified` when its score is >= the threshold
(the element's default 0.7).

Definitions:
- An alarm is one clip: Stage 1 alone raises one per clip the element cuts (one per tracked
  object that triggers, again after each 30-frame cooldown); clips the element drops (object
  lost before 8 tiles, max-clips-per-source) raise none. With Stage 2 an alarm is a verified
  clip.
- Alarms per minute divide by the held-out part's length in video time (10 fps).
- Precision and recall are those of `verified` for the person tracks' clips; false detections
  rejected is the share of the false-detection tracks' clips scored below the threshold. Clips
  of tracks labelled `exclude` (mixed or ambiguous) count as alarms but in neither figure.
- Static negatives (background boxes no detection touched) are no alarms; their rejected share
  is printed apart.

--check recomputes every figure from the model given and fails when one differs from the file
(or the model's sha256 is not the one the file was made from), so the figures in the README are
those of the committed model.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

DEFAULT_THRESHOLD = 0.7
SWEEP = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]


def scores_of(model, clips, threads=1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(clips), 8):
        x = (clips[i:i + 8].astype(np.float32) - np.float32(127.5)) * np.float32(1.0 / 127.5)
        x = np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))
        logits = sess.run(["fc_pred"], {"input_rgb": x})[0].astype(np.float64)
        e = np.exp(logits - logits.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
        out.append(np.clip(p[:, 1:].sum(1), 0.0, 1.0))
    return np.concatenate(out) if out else np.zeros(0)


def at(threshold, person, false, excluded, static, minutes):
    tp = int((person >= threshold).sum())
    fp = int((false >= threshold).sum())
    fn = len(person) - tp
    tn = len(false) - fp
    ex = int((excluded >= threshold).sum())
    return {
        "threshold": threshold,
        "verified_person": tp, "rejected_person": fn,
        "verified_false": fp, "rejected_false": tn,
        "verified_excluded": ex,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / len(person), 4) if len(person) else None,
        "false_rejected": round(tn / len(false), 4) if len(false) else None,
        "static_rejected": round(float((static < threshold).mean()), 4) if len(static) else None,
        "alarms_per_minute": round((tp + fp + ex) / minutes, 2),
        "false_alarms_per_minute": round(fp / minutes, 2),
    }


def evaluate(model, data_dir):
    d = np.load(os.path.join(data_dir, "dataset.npz"))
    with open(os.path.join(data_dir, "clips.json")) as f:
        info = json.load(f)
    held = info["frames"] - info["split"]
    minutes = held / info["fps"] / 60.0
    kind, idx = d["test_kind"], d["test_clip"]
    scores = scores_of(model, d["test_x"])
    by_clip = {int(i): float(s) for k, i, s in zip(kind, idx, scores) if k == "clip"}
    alarms = [c for c in info["clips"] if c["part"] == "test"]
    person = np.array([by_clip[c["index"]] for c in alarms if c["label"] == "person"])
    false = np.array([by_clip[c["index"]] for c in alarms if c["label"] == "false-detection"])
    excluded_clips = [c for c in alarms if c["label"] == "exclude"]
    excluded = np.array([by_clip[c["index"]] for c in excluded_clips])
    static = scores[kind == "static"]
    with open(model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    dropped = [c for c in info["clips"] if c["start"] > info["split"] and c["part"] is None]
    return {
        "model_sha256": sha,
        "held_out": {"first_frame": info["split"] + 1, "last_frame": info["frames"],
                     "seconds": held / info["fps"]},
        "stage1": {"alarms": len(alarms), "person": len(person), "false_detection": len(false),
                   "excluded": len(excluded_clips), "dropped_by_element": len(dropped),
                   "alarms_per_minute": round(len(alarms) / minutes, 2),
                   "false_alarms_per_minute": round(len(false) / minutes, 2)},
        "static_negatives": len(static),
        "default": at(DEFAULT_THRESHOLD, person, false, excluded, static, minutes),
        "sweep": [at(t, person, false, excluded, static, minutes) for t in SWEEP],
        "scores": {"person": np.round(person, 4).tolist(), "false_detection": np.round(false, 4).tolist()},
    }


def show(f):
    s1, d = f["stage1"], f["default"]
    h = f["held_out"]
    print(f"Held-out part of vtest.avi: frames {h['first_frame']}-{h['last_frame']} "
          f"({h['seconds']:.1f} s at 10 fps); model sha256 {f['model_sha256'][:16]}")
    print(f"Stage 1 alone: {s1['alarms']} alarms (clips the element cuts): {s1['person']} of person "
          f"tracks, {s1['false_detection']} of false detections, {s1['excluded']} of tracks left "
          f"unlabelled; {s1['alarms_per_minute']} alarms/min, {s1['false_alarms_per_minute']} "
          f"false alarms/min")
    print(f"With Stage 2 at the default threshold {d['threshold']}: precision {d['precision']}, "
          f"recall {d['recall']} ({d['verified_person']}/{s1['person']} person clips verified); "
          f"false detections rejected {d['rejected_false']}/{s1['false_detection']}; "
          f"{d['alarms_per_minute']} alarms/min, {d['false_alarms_per_minute']} false alarms/min; "
          f"static background negatives rejected {d['static_rejected']} of {f['static_negatives']}")
    print("threshold  precision  recall  false-rejected  static-rejected  alarms/min  false-alarms/min")
    for r in f["sweep"]:
        print(f"{r['threshold']:9.2f}  {str(r['precision']):>9}  {str(r['recall']):>6}  "
              f"{str(r['false_rejected']):>14}  {str(r['static_rejected']):>15}  "
              f"{r['alarms_per_minute']:10.2f}  {r['false_alarms_per_minute']:16.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="dataset.py's --out folder")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--check", help="fail unless the figures equal this file's")
    a = ap.parse_args()
    f = evaluate(a.model, a.data)
    show(f)
    if a.json:
        with open(a.json, "w") as out:
            json.dump(f, out, indent=1)
            out.write("\n")
    if a.check:
        with open(a.check) as g:
            want = json.load(g)
        if want["model_sha256"] != f["model_sha256"]:
            sys.exit(f"{a.check} was made from model sha256 {want['model_sha256']}, "
                     f"not {a.model} ({f['model_sha256']})")
        bad = [k for k in ("held_out", "stage1", "static_negatives", "default", "sweep") if want[k] != f[k]]
        # Scores may differ in the last digit between ONNX Runtime builds; 1e-3 is far below
        # anything that moves a figure, and the figures above must match exactly.
        for k in ("person", "false_detection"):
            if len(want["scores"][k]) != len(f["scores"][k]) or \
                    np.abs(np.array(want["scores"][k]) - np.array(f["scores"][k])).max(initial=0) > 1e-3:
                bad.append(f"scores.{k}")
        if bad:
            sys.exit(f"figures differ from {a.check}: {', '.join(bad)}")
        print(f"figures equal {a.check}: 1 passed, 0 failed")


if __name__ == "__main__":
    main()
