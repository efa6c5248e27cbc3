# SPDX-License-Identifier: MIT OR Apache-2.0
"""A head adapted to one camera: a head's own recipe (features, transform, pose cue, training
rows) plus the camera's labelled tracks, weighed and regularised by cross-validation on them.

    python models/backbone/adapt.py --head models/backbone/head-fast.json \
        --model .cache/backbone/onnx/mc3_18-fast-features.onnx \
        --pose .cache/backbone/onnx/blazepose-presence.onnx \
        --data .cache/verifier/dataset.npz --extra .cache/verifier/train-negatives.npz \
        --augment .cache/verifier/augment.npz --augment-features AUGMENT_FEATURES.onnx \
        --site .cache/scenes/market --until 900 --out head-site.json

The camera's clips come from a set folder (models/scenes/scene.py: its tracks labelled by eye);
the tracks whose first clip starts before frame --until adapt the head (models/scenes/split.py),
the later ones are left to judge it. Pre-registered in models/backbone/README.md ("adapting the
head to one camera"): the base head's recipe is kept as it is (variant, copies, the cue and its
tiles); the camera's rows are added, each track a CV group of its own, class-balanced within each
source, and weigh a share of the total (SHARES); the share and the L2 strength are chosen by
5-fold CV grouped by track over all rows, by the lowest out-of-fold log-loss on the camera's
rows. The head is written like train_head.py's (build.py verifier builds its graph), with a
"site" entry saying what adapted it.
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "scenes"))
import features as F  # noqa: E402
import split as S  # noqa: E402
import train_head as T  # noqa: E402

# The camera's share of the total weight: "natural" (a camera row weighs what a training row
# weighs), then fixed shares up to 1 (the camera's rows alone).
SHARES = ["natural", 0.25, 0.5, 1.0]
L2_GRID = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
SITE_RULE = ("the base head's recipe kept; the camera's rows (tracks starting before --until) added, "
             "each track a CV group; class-balanced within each source; the camera's share of the "
             "weight in " + ", ".join(str(s) for s in SHARES) + " and L2 chosen by 5-fold CV grouped "
             "by track over all rows, by the lowest out-of-fold log-loss on the camera's rows (ties: "
             "the smaller share, then the smaller L2)")


def source_weights(y, is_site, share, balanced):
    """Each row's weight: class-balanced (when the base head is) within its source, the camera's
    rows summing to `share` of the total ("natural": their share of the rows)."""
    s = float(is_site.mean()) if share == "natural" else float(share)
    w = np.zeros(len(y))
    for mask, total in ((~is_site, 1.0 - s), (is_site, s)):
        if mask.any():
            part = T.balanced_weights(y[mask]) if balanced else np.ones(int(mask.sum()))
            w[mask] = total * part / part.sum()
    return w


def search(x, y, groups, is_site, balanced, shares=SHARES, l2_grid=L2_GRID, log=print):
    """The pre-registered CV: every share and L2 strength scored by the out-of-fold log-loss on
    the camera's rows; returns (the grid, the best row, the head fitted on every row with it as
    folded weights w and bias b)."""
    grid = []
    for si, share in enumerate(shares):
        w = source_weights(y, is_site, share, balanced)
        for l2 in l2_grid:
            p = 1.0 / (1.0 + np.exp(-T.cross_validate_logits(x, y, groups, l2, weight=w)))
            r = {"share": share, "l2": l2, "order": si,
                 "site_log_loss": round(T.log_loss(p[is_site], y[is_site]), 5),
                 "training_log_loss": round(T.log_loss(p[~is_site], y[~is_site]), 5)}
            grid.append(r)
            log(f"share {share!s:>7} l2 {l2:<7g}: out-of-fold log-loss on the camera's rows "
                f"{r['site_log_loss']:.4f} (training rows {r['training_log_loss']:.4f})")
    best = min(grid, key=lambda r: (r["site_log_loss"], r["order"], r["l2"]))
    w, b = T.fit_folded(x, y, best["l2"], source_weights(y, is_site, best["share"], balanced))
    return [{k: v for k, v in r.items() if k != "order"} for r in grid], best, w, b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--head", required=True, help="the base head (train_head.py's JSON): its recipe is kept")
    ap.add_argument("--model", required=True, help="the features graph the base head was fitted on")
    ap.add_argument("--pose", help="the pose cue's graph (build.py pose), when the base head uses it")
    ap.add_argument("--data", required=True, help="the training part (dataset.py's dataset.npz)")
    ap.add_argument("--extra", help="train_negatives.py's clips, when the base head used them")
    ap.add_argument("--augment", help="augment.py's copies, when the base head used them")
    ap.add_argument("--augment-features", help="the features graph for the copies (default --model)")
    ap.add_argument("--site", required=True, help="the camera's set folder (scene.py), labelled by eye")
    ap.add_argument("--until", type=int, required=True,
                    help="the tracks whose first clip starts before this frame adapt the head")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    try:
        with open(a.head) as f:
            base = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"--head {a.head}: {e}")
    if base.get("extra") and not a.extra:
        sys.exit(f"{a.head} was fitted with --extra {base['extra']}: give it")
    if base.get("augment") and not a.augment:
        sys.exit(f"{a.head} was fitted with the copies {'+'.join(base['augment'])}: give --augment")
    pose = base.get("pose")
    if pose and pose.get("fusion") != "head":
        sys.exit(f"{a.head}: pose fusion {pose.get('fusion')!r}: only a head fitted on the cue can be adapted")
    if pose and not a.pose:
        sys.exit(f"{a.head} uses the pose cue: give its graph with --pose")

    try:
        d, _ = S.load(a.site)
        rows = S.adapt_rows(d, a.until)
    except ValueError as e:
        sys.exit(str(e))
    if not rows.any():
        sys.exit(f"{a.site}: no labelled track starts before frame {a.until}")
    sx, sy = d["test_x"][rows], d["test_y"][rows].astype(np.float64)
    if sy.min() == sy.max():
        sys.exit(f"{a.site} before frame {a.until}: only {'person' if sy[0] else 'false-detection'} "
                 "clips; the camera's rows need both labels")

    clips, x, y, groups, extra, kind = T.load_rows(a.model, a.data, a.extra if base.get("extra") else None,
                                                   a.augment if base.get("augment") else None,
                                                   a.augment_features)
    use = T.rows_used(kind, extra, bool(base.get("extra")), base.get("augment", []))
    xt = T.transform(np.concatenate([x[use], F.features_of(a.model, sx).astype(np.float64)]),
                     base.get("transform", "none"))
    if pose:
        tiles = T.pose_tiles(a.pose)
        cue = np.concatenate([T.pose_cue(F.features_of(a.pose, c), pose["tiles"], tiles)
                              for c in clips + [sx]])
        xt = np.hstack([xt, np.concatenate([cue[:len(y)][use], cue[len(y):]])[:, None]])
    yy = np.concatenate([y[use], sy])
    gg = np.concatenate([groups[use], np.array([f"site{t}" for t in d["test_track"][rows]])])
    is_site = np.concatenate([np.zeros(int(use.sum()), bool), np.ones(len(sy), bool)])
    print(f"{int(use.sum())} training rows, {len(sy)} camera rows ({int(sy.sum())} person, "
          f"{int((1 - sy).sum())} false) of {len(set(gg[is_site].tolist()))} tracks before frame "
          f"{a.until}; {T.FOLDS}-fold CV grouped by track", flush=True)
    grid, best, wf, bf = search(xt, yy, gg, is_site, base.get("balanced", False),
                                log=lambda m: print(m, flush=True))
    head = dict(base)
    head["kind"] = base["kind"] + f", adapted to {os.path.basename(os.path.normpath(a.site))}"
    head["l2"] = best["l2"]
    head["training_clips"] = int(len(yy))
    head["site"] = {"set": os.path.basename(os.path.normpath(a.site)), "until": a.until,
                    "share": best["share"], "base_head": os.path.basename(a.head),
                    "person_clips": int(sy.sum()), "false_clips": int((1 - sy).sum()),
                    "tracks": len(set(gg[is_site].tolist())), "rule": SITE_RULE}
    head["cv"] = {"folds": T.FOLDS, "grouped_by": "track (each static negative alone)", "seed": T.SEED,
                  "criterion": "the mean out-of-fold log-loss on the camera's rows", "grid": grid}
    if pose:
        head["pose"] = dict(pose, weight=float(wf[-1]))
        wf = wf[:-1]
    head["weight"] = [float(v) for v in wf]
    head["bias"] = float(bf)
    with open(a.out, "w") as f:
        json.dump(head, f, indent=1)
        f.write("\n")
    print(f"chose share {best['share']}, l2 {best['l2']:g} (out-of-fold log-loss on the camera's "
          f"rows {best['site_log_loss']:.4f}); wrote {a.out}")


if __name__ == "__main__":
    main()
