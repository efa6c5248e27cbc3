# SPDX-License-Identifier: MIT OR Apache-2.0
"""Figures of Stage 2 on footage it was not trained on, for several verifiers side by side.

    python models/verifier/eval.py \
        --model scratch=onnx:models/verifier/scratch.onnx \
        --model distilled=onnx:models/verifier/verifier.onnx \
        --model backbone=backbone:FEATURES.onnx:models/backbone/head.json \
        --set vtest=.cache/verifier --set bikes=.cache/scenes/bikes \
        [--fight FIGHT.onnx] [--json OUT] [--check models/verifier/figures.json]

Needs only numpy, onnx and onnxruntime (the project venv). A set is a folder with dataset.npz
and clips.json (dataset.py: the held-out part of vtest.avi; models/scenes/scene.py: other
detections or another scene); only its test part is scored. Models:
- `onnx:PATH`: scored as the element scores it with its defaults: softmax over the two classes,
  the score is the sum over every class but class 0, i.e. p(person);
- `backbone:FEATURES:HEAD`: mc3_18's pooled features (models/backbone/features.py, cached on
  disk) and the logistic-regression head (HEAD, JSON): p(person) = sigmoid(w.f + b), what
  `build.py verifier` puts in one graph (the same numbers up to float rounding; the per-clip
  features are cached because the backbone costs about 1 s a clip here);
  `backbone:FEATURES:HEAD:POSE`: the same with a head that adds the pose cue (its "pose" entry;
  POSE is the graph of `build.py pose`, its presence logits cached the same way).
A clip is `verified` when its score is >= the threshold (the element's default 0.7).

Definitions:
- An alarm is one clip: Stage 1 alone raises one per clip the element cuts (one per tracked
  object that triggers, again after each 30-frame cooldown); clips the element drops (object
  lost before 8 tiles, max-clips-per-source) raise none. With Stage 2 an alarm is a verified
  clip. Alarms per minute divide by the set's length in video time.
- Per clip: precision and recall of `verified` for the person tracks' clips; false detections
  rejected is the share of the false-detection tracks' clips scored below the threshold. Clips
  of tracks labelled `exclude` count as alarms but in neither figure.
- Per track (an incident): a person track is caught when any of its clips is verified; a false
  track is gone when all of its clips are rejected.
- Static negatives (background boxes no detection touched; vtest only) are no alarms; their
  rejected share is printed apart.
- `--fight`: the package's own fight/noFight head (class 0 `fight`) run as the element would with
  positive-classes=fight, on every clip of every set; there is no fight in any of them, so every
  verified clip is a false alarm. Its recall is not measured: no fight footage is here.

--check recomputes every figure from the models given and fails when one differs from the file
(or a model's sha256 is not the one the file was made from).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "backbone"))
import features as F  # noqa: E402
import train_head  # noqa: E402

DEFAULT_THRESHOLD = 0.7
SWEEP = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]


def scores_of(model, clips, threads=1):
    """The element's default score (softmax, sum of every class but 0) with ONNX Runtime."""
    sess = F.session(model, threads)
    out = []
    for i in range(0, len(clips), 8):
        logits = sess.run(["fc_pred"], {"input_rgb": F.to_input(clips[i:i + 8])})[0].astype(np.float64)
        e = np.exp(logits - logits.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
        out.append(np.clip(p[:, 1:].sum(1), 0.0, 1.0))
    return np.concatenate(out) if out else np.zeros(0)


class Scorer:
    def __init__(self, spec):
        kind, _, rest = spec.partition(":")
        self.kind = kind
        if kind == "onnx":
            self.path = rest
            self.sha = F.file_sha(rest)
            self.files = {"model": os.path.basename(rest)}
        elif kind == "backbone":
            feats, _, rest = rest.partition(":")
            head, _, pose = rest.partition(":")
            self.features, self.head_path, self.pose = feats, head, pose or None
            with open(head) as f:
                self.head = json.load(f)
            if self.head.get("pose") and not self.pose:
                sys.exit(f"--model {spec!r}: {head} uses the pose cue: give its graph, "
                         "backbone:FEATURES:HEAD:POSE")
            # Each file hashed once (the graphs are 11-46 MB); the pose graph's tiles read once.
            self.files = {"features_sha256": F.file_sha(feats), "head_sha256": F.file_sha(head),
                          **({"pose_sha256": F.file_sha(self.pose)} if self.pose else {})}
            self.sha = hashlib.sha256("".join(self.files.values()).encode()).hexdigest()
            self.pose_tiles = train_head.pose_tiles(self.pose) if self.head.get("pose") else None
        else:
            sys.exit(f"--model {spec!r}: the kind must be onnx: or backbone:, not {kind!r}")

    def __call__(self, clips):
        if self.kind == "onnx":
            return scores_of(self.path, clips)
        cue = None
        if self.head.get("pose"):
            cue = train_head.pose_cue(F.features_of(self.pose, clips), self.head["pose"]["tiles"],
                                      self.pose_tiles)
        z = train_head.head_logits(self.head, F.features_of(self.features, clips), cue)
        return 1.0 / (1.0 + np.exp(-z))


def fight_scores(fight_model, features_model, clips):
    """P(fight) of the package's head: softmax over its (fight, noFight) logits, computed from
    the cached pooled features and the head's weights read from the fight graph."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(fight_model)
    w = {t.name: numpy_helper.to_array(t) for t in g.graph.initializer if t.name.startswith("fc.")}
    f = F.features_of(features_model, clips).astype(np.float64)
    logits = f @ w["fc.weight"].astype(np.float64).T + w["fc.bias"].astype(np.float64)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True))[:, 0]


def at(threshold, person, false, excluded, static, minutes, tracks):
    tp = int((person >= threshold).sum())
    fp = int((false >= threshold).sum())
    fn = len(person) - tp
    tn = len(false) - fp
    ex = int((excluded >= threshold).sum())
    caught = sum(1 for s in tracks["person"] if max(s) >= threshold)
    gone = sum(1 for s in tracks["false"] if max(s) < threshold)
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
        "person_tracks_caught": caught, "false_tracks_gone": gone,
        "track_recall": round(caught / len(tracks["person"]), 4) if tracks["person"] else None,
        "false_tracks_gone_share": round(gone / len(tracks["false"]), 4) if tracks["false"] else None,
    }


def load_set(data_dir):
    d = np.load(os.path.join(data_dir, "dataset.npz"))
    with open(os.path.join(data_dir, "clips.json")) as f:
        info = json.load(f)
    return d, info


def evaluate_set(scorer, d, info):
    held = info["frames"] - info["split"]
    minutes = held / info["fps"] / 60.0
    kind, idx = d["test_kind"], d["test_clip"]
    scores = scorer(d["test_x"])
    by_clip = {int(i): float(s) for k, i, s in zip(kind, idx, scores) if k == "clip"}
    alarms = [c for c in info["clips"] if c["part"] == "test"]

    def of(label):
        return np.array([by_clip[c["index"]] for c in alarms if c["label"] == label])

    person, false, excluded = of("person"), of("false-detection"), of("exclude")
    tracks = {"person": {}, "false": {}}
    for c in alarms:
        key = {"person": "person", "false-detection": "false"}.get(c["label"])
        if key:
            tracks[key].setdefault(c["track"], []).append(by_clip[c["index"]])
    tracks = {k: [v[t] for t in sorted(v)] for k, v in tracks.items()}
    static = scores[kind == "static"]
    dropped = [c for c in info["clips"] if c["start"] > info["split"] and c["part"] is None]
    return {
        "frames": {"first": info["split"] + 1, "last": info["frames"], "seconds": round(held / info["fps"], 2)},
        "stage1": {"alarms": len(alarms), "person": len(person), "false_detection": len(false),
                   "excluded": len(excluded), "dropped_by_element": len(dropped),
                   "person_tracks": len(tracks["person"]), "false_tracks": len(tracks["false"]),
                   "alarms_per_minute": round(len(alarms) / minutes, 2),
                   "false_alarms_per_minute": round(len(false) / minutes, 2)},
        "static_negatives": int(len(static)),
        "default": at(DEFAULT_THRESHOLD, person, false, excluded, static, minutes, tracks),
        "sweep": [at(t, person, false, excluded, static, minutes, tracks) for t in SWEEP],
        "scores": {"person": np.round(person, 4).tolist(), "false_detection": np.round(false, 4).tolist()},
    }


def fight_figures(fight_model, features_model, sets):
    rows = {}
    for name, (d, info) in sets.items():
        p = fight_scores(fight_model, features_model, d["test_x"])
        minutes = (info["frames"] - info["split"]) / info["fps"] / 60.0
        alarms = d["test_kind"] == "clip"
        rows[name] = {"clips": int(alarms.sum()), "static": int((~alarms).sum()),
                      "false_alarms": int((p[alarms] >= DEFAULT_THRESHOLD).sum()),
                      "false_alarm_share": round(float((p[alarms] >= DEFAULT_THRESHOLD).mean()), 4),
                      "false_alarms_per_minute": round(float((p[alarms] >= DEFAULT_THRESHOLD).sum()) / minutes, 2),
                      "static_false_alarms": int((p[~alarms] >= DEFAULT_THRESHOLD).sum()),
                      "p_fight_median": round(float(np.median(p[alarms])), 4),
                      "p_fight_max": round(float(p[alarms].max()), 4)}
    return {"model_sha256": F.file_sha(fight_model), "threshold": DEFAULT_THRESHOLD,
            "positive_classes": "fight", "sets": rows,
            "recall": "not measured: no fight footage here"}


def fmt(v):
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def show(f):
    names = list(f["models"])
    for s in f["sets"]:
        first = f["models"][names[0]]["sets"][s]
        s1, fr = first["stage1"], first["frames"]
        print(f"\n== {s}: frames {fr['first']}-{fr['last']} ({fr['seconds']} s); Stage 1: "
              f"{s1['alarms']} alarms ({s1['person']} person clips of {s1['person_tracks']} tracks, "
              f"{s1['false_detection']} false-detection clips of {s1['false_tracks']} tracks, "
              f"{s1['excluded']} excluded), {s1['alarms_per_minute']} alarms/min, "
              f"{s1['false_alarms_per_minute']} false/min")
        print(f"{'at 0.7':<28}" + "".join(f"{n:>16}" for n in names))
        rows = [("precision (clips)", lambda d, s1: fmt(d["precision"])),
                ("recall (clips)", lambda d, s1: f"{fmt(d['recall'])} {d['verified_person']}/{s1['person']}"),
                ("false clips rejected", lambda d, s1: f"{d['rejected_false']}/{s1['false_detection']}"),
                ("person tracks caught", lambda d, s1: f"{d['person_tracks_caught']}/{s1['person_tracks']}"),
                ("false tracks gone", lambda d, s1: f"{d['false_tracks_gone']}/{s1['false_tracks']}"),
                ("static rejected", lambda d, s1: fmt(d["static_rejected"])),
                ("alarms/min (Stage 1: %s)" % s1["alarms_per_minute"], lambda d, s1: fmt(d["alarms_per_minute"])),
                ("false alarms/min (%s)" % s1["false_alarms_per_minute"], lambda d, s1: fmt(d["false_alarms_per_minute"]))]
        for label, get in rows:
            print(f"{label:<28}" + "".join(f"{get(f['models'][n]['sets'][s]['default'], f['models'][n]['sets'][s]['stage1']):>16}"
                                          for n in names))
        print("sweep: threshold -> precision / recall / false rejected / tracks caught / false tracks gone")
        for i, t in enumerate(SWEEP):
            cells = []
            for n in names:
                r = f["models"][n]["sets"][s]["sweep"][i]
                cells.append(f"{fmt(r['precision'])}/{fmt(r['recall'])}/{r['rejected_false']}/"
                             f"{r['person_tracks_caught']}/{r['false_tracks_gone']}")
            print(f"  {t:<5}" + "".join(f"{c:>30}" for c in cells))
    if "fight" in f:
        print("\n== the package's fight head as the element would run it (positive-classes=fight, 0.7), "
              "on footage with no fight; recall not measured (no fight footage here)")
        for s, r in f["fight"]["sets"].items():
            print(f"  {s}: {r['false_alarms']}/{r['clips']} alarm clips called fight "
                  f"({r['false_alarms_per_minute']}/min), {r['static_false_alarms']}/{r['static']} static; "
                  f"P(fight) median {r['p_fight_median']}, max {r['p_fight_max']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="NAME=onnx:PATH or NAME=backbone:FEATURES:HEAD")
    ap.add_argument("--set", action="append", required=True, help="NAME=DIR (dataset.npz, clips.json)")
    ap.add_argument("--fight", help="the fight graph (build.py fight); needs a backbone model for its "
                    "features: the first --model of kind backbone, which must be the full network")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--check", help="fail unless the figures equal this file's")
    a = ap.parse_args()
    sets = {}
    for s in a.set:
        name, _, path = s.partition("=")
        sets[name] = load_set(path)
    f = {"threshold": DEFAULT_THRESHOLD, "sets": list(sets), "models": {}}
    features_model = None
    for m in a.model:
        name, _, spec = m.partition("=")
        sc = Scorer(spec)
        if sc.kind == "backbone" and features_model is None:
            features_model = sc.features  # the first backbone's (the full network's) features
        f["models"][name] = {"spec": sc.kind, "model_sha256": sc.sha, "files": sc.files,
                             "sets": {s: evaluate_set(sc, d, info) for s, (d, info) in sets.items()}}
    if a.fight:
        if not features_model:
            sys.exit("--fight needs a backbone: model (its cached features)")
        f["fight"] = fight_figures(a.fight, features_model, sets)
    show(f)
    if a.json:
        with open(a.json, "w") as out:
            json.dump(f, out, indent=1)
            out.write("\n")
    if a.check:
        with open(a.check) as g:
            want = json.load(g)
        bad = []
        for name, m in f["models"].items():
            w = want["models"].get(name)
            if w is None:
                bad.append(f"{name}: not in {a.check}")
                continue
            if w["model_sha256"] != m["model_sha256"]:
                bad.append(f"{name}: {a.check} was made from sha256 {w['model_sha256'][:16]}, "
                           f"not {m['model_sha256'][:16]}")
            for s, got in m["sets"].items():
                ws = w["sets"].get(s)
                if ws is None:
                    bad.append(f"{name}/{s}: not in {a.check}")
                    continue
                bad += [f"{name}/{s}.{k}" for k in ("frames", "stage1", "static_negatives", "default", "sweep")
                        if ws[k] != got[k]]
                # Scores may differ in the last digit between ONNX Runtime builds; 1e-3 moves no
                # figure, and the figures above must match exactly.
                for k in ("person", "false_detection"):
                    if len(ws["scores"][k]) != len(got["scores"][k]) or np.abs(
                            np.array(ws["scores"][k]) - np.array(got["scores"][k])).max(initial=0) > 1e-3:
                        bad.append(f"{name}/{s}.scores.{k}")
        if "fight" in f and want.get("fight") != f["fight"]:
            bad.append("fight")
        if bad:
            sys.exit(f"figures differ from {a.check}: {', '.join(bad)}")
        print(f"figures equal {a.check}: 1 passed, 0 failed")


if __name__ == "__main__":
    main()
