# SPDX-License-Identifier: MIT OR Apache-2.0
"""A logistic-regression head on the backbone's frozen 512-d pooled features (numpy only).

    python models/backbone/train_head.py --model .cache/backbone/onnx/mc3_18-features.onnx \
        --data .cache/verifier/dataset.npz --out models/backbone/head.json

Training part only (dataset.py's first 60 % of vtest.avi: element clips, windows along the
tracks, static negatives). Features are standardised with the training part's mean and standard
deviation; the head minimises the mean log-loss + (l2 / 2) |w|^2 by Newton's method (exact,
deterministic). Every setting (the variant, see VARIANTS, and the L2 strength) is chosen by 5-fold cross-validation on the training part,
grouped by track (all windows and clips of one track sit in one fold; each static negative is a
group of its own), by the lowest mean held-out-fold log-loss; the held-out part of the footage
is never looked at here. The standardisation is folded into the written weights, so the head is
w.f + b on the raw features.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features as F  # noqa: E402

L2_GRID = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0]
# The variants compared by the same grouped cross-validation: the plain head (the floor the
# issue measured), class-balanced weights (each class weighs as much in the loss), and the
# features' square root (they are non-negative: ReLU then average pooling; the root evens out
# a few large activations), alone and with balanced weights.
VARIANTS = [("plain", "none", False), ("balanced", "none", True), ("sqrt", "sqrt", False),
            ("sqrt-balanced", "sqrt", True)]


def transform(x, kind):
    return np.sqrt(np.maximum(x, 0.0)) if kind == "sqrt" else x


def head_logits(head, feats, cue=None):
    """The head's logit w.t(f) + b for raw pooled features [N, 512] (t: head["transform"]), plus
    head["pose"]["weight"] times the pose cue (the mean presence logit over the tiles, cue [N])
    when the head has one."""
    f = transform(np.asarray(feats, np.float64), head.get("transform", "none"))
    z = f @ np.asarray(head["weight"], np.float64) + float(head["bias"])
    if head.get("pose"):
        if cue is None:
            raise ValueError("this head uses the pose cue: its presence logits are needed")
        z = z + float(head["pose"]["weight"]) * np.asarray(cue, np.float64)
    return z


def pose_cue(presence, tiles=None, graph_tiles=None):
    """The clip's pose cue: the mean over its tiles of the presence logits [N, K] (the pose graph's,
    one column per tile of graph_tiles); tiles: only these of them (default all)."""
    presence = np.asarray(presence, np.float64)
    if tiles is not None:
        presence = presence[:, [list(graph_tiles).index(t) for t in tiles]]
    return presence.mean(axis=1)


def balanced_weights(y):
    n1 = y.sum()
    n0 = len(y) - n1
    return np.where(y == 1, len(y) / (2.0 * max(n1, 1)), len(y) / (2.0 * max(n0, 1)))
FOLDS = 5
SEED = 0
# Written down (models/backbone/README.md) before any augmented head was scored anywhere but here.
AUGMENT_RULE = ("every head is scored on every row of the held-out folds: the unaugmented rows "
                "(dataset + --extra), the grey copies and the zoom copies; criterion = the mean of "
                "the three kinds' log-losses (each kind weighs the same); lowest wins, except that a "
                "head trained with copies is ruled out when its log-loss on the unaugmented rows is "
                "more than 10 % above the best head trained without them")


# Written down (models/backbone/README.md, "Pre-registered: a pose-presence cue") before any pose
# score: (use --extra, copies, cue fusion): A (no cue), B (a head on the features and the cue, with
# no, grey, grey and zoom copies), C (A's logit + the cue), all chosen among by AUGMENT_RULE.
POSE_CANDIDATES = [(True, (), None), (True, (), "head"), (True, ("grey",), "head"),
                   (True, ("grey", "zoom"), "head"), (True, (), "sum")]
# A (and so C) keeps the committed fast head's own setting, chosen by its CV before the cue existed.
POSE_A_SETTING = ("sqrt-balanced", 0.001)
POSE_RULE = ("candidates: no cue (A, the fast head's setting: sqrt-balanced, L2 0.001); a head on the "
             "features and the cue with no, the grey, or the grey and zoom copies (B, L2 searched); A's "
             "logit + the cue (C); chosen among by AUGMENT_RULE")


def pose_eligible(r):
    """Whether a row of the grid is one of the pre-registered candidates (A and C at A's setting)."""
    return r.get("pose") == "head" or (r["variant"], r["l2"]) == POSE_A_SETTING


def pose_tiles(graph):
    """The tiles the pose graph reads (its `iguard.pose.tiles` metadata)."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(graph, load_external_data=False).metadata_props}
    if "iguard.pose.tiles" not in meta:
        sys.exit(f"{graph}: no iguard.pose.tiles metadata (not a build.py pose graph)")
    return [int(t) for t in meta["iguard.pose.tiles"].split(",")]


def choose_augmented(rows):
    base = min(r["log_loss"] for r in rows if not r["augment"])
    ok = [r for r in rows if not r["augment"] or r["log_loss"] <= 1.1 * base]
    return min(ok, key=lambda r: (r["criterion"], len(r["augment"]), r["l2"]))


def fit(x, y, l2, weight=None, iters=50):
    """Newton's method for L2-regularised logistic regression; returns (w, b)."""
    n, d = x.shape
    sw = np.ones(n) if weight is None else weight
    sw = sw / sw.sum()
    xa = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0  # the bias is not penalised
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(xa @ beta)))
        g = xa.T @ (sw * (p - y)) + reg * beta
        h = (xa * (sw * p * (1 - p))[:, None]).T @ xa + np.diag(reg) + 1e-10 * np.eye(d + 1)
        step = np.linalg.solve(h, g)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return beta[:-1], beta[-1]


def log_loss(p, y):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def group_folds(groups, k=FOLDS, seed=SEED):
    """Fold index per sample: whole groups, shuffled (seeded), dealt so fold sizes stay close."""
    uniq, counts = np.unique(groups, return_counts=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]  # big groups first, ties shuffled
    size = np.zeros(k)
    fold_of = {}
    for i in order:
        f = int(np.argmin(size))
        fold_of[uniq[i]] = f
        size[f] += counts[i]
    return np.array([fold_of[g] for g in groups])


def standardise(x, mean, std):
    return (x - mean) / std


def cross_validate(x, y, groups, l2, balanced=False, use=None):
    """Out-of-fold p(person) of every row; `use` (a mask) limits what the folds train on."""
    return 1.0 / (1.0 + np.exp(-cross_validate_logits(x, y, groups, l2, balanced, use)))


def cross_validate_logits(x, y, groups, l2, balanced=False, use=None, weight=None):
    """Out-of-fold logits of every row (see cross_validate); `weight`: each row's weight in the
    loss (instead of `balanced`'s)."""
    folds = group_folds(groups)
    z = np.zeros(len(y))
    for f in range(FOLDS):
        tr, te = folds != f, folds == f
        if use is not None:
            tr = tr & use
        sw = weight[tr] if weight is not None else (balanced_weights(y[tr]) if balanced else None)
        w, b = fit_folded(x[tr], y[tr], l2, sw)
        z[te] = x[te] @ w + b
    return z


def rows_used(kind, extra, use_extra, augment):
    """The rows a head trains on: the unaugmented ones (--extra's only with use_extra) and the
    copies of the kinds in `augment`."""
    return ((kind == "clip") & (use_extra | ~extra)) | np.isin(kind, list(augment))


def fit_folded(x, y, l2, weight=None):
    """fit() on the features standardised with x's mean and standard deviation, the
    standardisation folded into the weights: w.((x - mean) / std) + b = (w / std).x + (b - w.(mean / std))."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    w, b = fit(standardise(x, mean, std), y, l2, weight)
    return w / std, b - float(np.dot(w, mean / std))


def load_rows(model, data, extra=None, augment=None, augment_features=None):
    """The training rows: the training part's clips, --extra's and --augment's copies. Returns the
    clips (a list, one array per source), features x, labels y, CV groups, the mask of --extra's
    rows and each row's kind ("clip", or the copy's: "grey", "zoom")."""
    d = np.load(data)
    keep = training_clips(d)
    clips = [d["train_x"][keep]]
    x = F.features_of(model, clips[0]).astype(np.float64)
    y = d["train_y"][keep].astype(np.float64)
    groups = groups_of(d)[keep]
    is_extra = np.zeros(len(y), bool)
    if extra:
        e = np.load(extra)
        clips.append(e["x"])
        x = np.concatenate([x, F.features_of(model, e["x"]).astype(np.float64)])
        y = np.concatenate([y, e["y"].astype(np.float64)])
        groups = np.concatenate([groups, np.array([f"n{t}" for t in e["track"]])])
        is_extra = np.concatenate([is_extra, np.ones(len(e["y"]), bool)])
    kind = np.array(["clip"] * len(y), dtype=object)
    if augment:
        if not extra:
            sys.exit("--augment needs --extra (the copies include --extra's clips)")
        g = np.load(augment)
        clips.append(g["x"])
        x = np.concatenate([x, F.features_of(augment_features or model, g["x"]).astype(np.float64)])
        y = np.concatenate([y, g["y"].astype(np.float64)])
        groups = np.concatenate([groups, g["group"]])
        is_extra = np.concatenate([is_extra, np.zeros(len(g["y"]), bool)])
        kind = np.concatenate([kind, g["kind"].astype(object)])
    return clips, x, y, groups, is_extra, kind


def groups_of(d, part="train"):
    """Track id for clips and windows; each static negative its own group."""
    kinds, tracks, idx = d[f"{part}_kind"], d[f"{part}_track"], d[f"{part}_clip"]
    return np.array([f"t{t}" if k != "static" else f"s{i}" for k, t, i in zip(kinds, tracks, idx)])


def training_clips(d):
    """The training part's clips the head (and the distilled model) learn from: every element
    clip, window and static negative of a labelled track."""
    return d["train_y"] >= 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the features graph (build.py features)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cut", default="full",
                    help="the cut of the network --model was built with (build.py --cut), recorded in "
                         "the head so that `build.py verifier` builds the same graph")
    ap.add_argument("--extra", help="more training-part clips with labels (npz: x, y, track; "
                    "models/verifier/train_negatives.py): the CV compares the head with and without "
                    "them, every head scored on every row")
    ap.add_argument("--augment", help="augmented copies of the training clips (npz: x, y, group, kind; "
                    "models/backbone/augment.py): the CV compares the head with --extra's rows and "
                    "none, the `grey` copies, or the `grey` and `zoom` copies added (see AUGMENT_RULE)")
    ap.add_argument("--augment-features",
                    help="the features graph to compute the augmented copies' features with (a copy "
                         "of --model, so its feature cache is its own; default --model)")
    ap.add_argument("--l2-grid", type=lambda v: [float(t) for t in v.split(",")], default=L2_GRID,
                    help="comma-separated L2 strengths to search (default: L2_GRID)")
    ap.add_argument("--variant", choices=[v[0] for v in VARIANTS],
                    help="only this variant (default: choose among all by CV)")
    ap.add_argument("--pose-tiles", type=lambda v: [int(t) for t in v.split(",")],
                    help="with --pose: the tiles the cue averages (default all the graph's)")
    ap.add_argument("--pose", help="the pose cue's graph (build.py pose: presence logits per tile; needs "
                    "--augment): the CV compares the head without the cue, heads on the features and "
                    "the cue (without copies, with the grey, with the grey and zoom copies) and the "
                    "head without the cue plus the cue's logit (see POSE_CANDIDATES)")
    ap.add_argument("--candidates-out", help="with --pose: also write each candidate's head, its own "
                    "setting chosen by the same rule, to <this>-pose-<fusion>[-<copies>].json")
    a = ap.parse_args()
    if a.pose and not a.augment:
        sys.exit("--pose needs --augment (the pre-registered rule scores every candidate on the copies)")
    clips, x, y, groups, extra, kind = load_rows(a.model, a.data, a.extra, a.augment, a.augment_features)
    print(f"{len(y)} training clips ({int(y.sum())} person, {int((1 - y).sum())} false; "
          f"{int(extra.sum())} of them from --extra), {len(np.unique(groups))} groups, "
          f"{FOLDS}-fold grouped CV")
    cue = None
    if a.pose:
        graph_tiles = pose_tiles(a.pose)
        tiles = a.pose_tiles or graph_tiles
        if not set(tiles) <= set(graph_tiles):
            sys.exit(f"--pose-tiles {tiles}: the graph {a.pose} reads tiles {graph_tiles} only")
        cue = np.concatenate([pose_cue(F.features_of(a.pose, c), tiles, graph_tiles) for c in clips])
        print(f"pose cue: mean presence logit, person rows {cue[y == 1].mean():.2f}, false rows "
              f"{cue[y == 0].mean():.2f} (training part)")
    ap_variant = a.variant
    rows = []
    original = kind == "clip"
    kinds = [k for k in ("clip", "grey", "zoom") if (kind == k).any()]
    if a.pose:
        candidates = POSE_CANDIDATES
    elif a.augment:
        candidates = [(True, (), None), (True, ("grey",), None), (True, ("grey", "zoom"), None)]
    else:
        candidates = [(e, (), None) for e in ([False, True] if a.extra else [False])]
    for use_extra, aug, fusion in candidates:
        use = rows_used(kind, extra, use_extra, aug)
        for name, tf, balanced in VARIANTS:
            if ap_variant and name != ap_variant:
                continue
            xt = transform(x, tf)
            if fusion == "head":
                xt = np.hstack([xt, cue[:, None]])
            for l2 in a.l2_grid:
                z = cross_validate_logits(xt, y, groups, l2, balanced, use)
                if fusion == "sum":
                    z = z + cue
                p = 1.0 / (1.0 + np.exp(-z))
                o = original
                r = {"variant": name, "l2": l2, "log_loss": round(log_loss(p[o], y[o]), 5),
                     "accuracy_at_0.5": round(float(((p[o] >= 0.5) == (y[o] == 1)).mean()), 5),
                     "person_verified_at_0.7": round(float((p[o & (y == 1)] >= 0.7).mean()), 5),
                     "false_rejected_at_0.7": round(float((p[o & (y == 0)] < 0.7).mean()), 5)}
                if a.extra:
                    r = {"extra": use_extra, **r,
                         "log_loss_without_extra_rows": round(log_loss(p[o & ~extra], y[o & ~extra]), 5),
                         "extra_false_rejected_at_0.7": round(float((p[extra & (y == 0)] < 0.7).mean()), 5)}
                if a.pose:
                    r["pose"] = fusion
                if a.augment:
                    r["augment"] = list(aug)
                    for k in kinds[1:]:
                        m = kind == k
                        r[f"log_loss_{k}_rows"] = round(log_loss(p[m], y[m]), 5)
                        r[f"person_verified_at_0.7_{k}_rows"] = round(float((p[m & (y == 1)] >= 0.7).mean()), 5)
                        r[f"false_rejected_at_0.7_{k}_rows"] = round(float((p[m & (y == 0)] < 0.7).mean()), 5)
                    r["criterion"] = round(float(np.mean([r["log_loss"]] + [r[f"log_loss_{k}_rows"]
                                                                             for k in kinds[1:]])), 5)
                rows.append(r)
                print(f"{'+extra ' if use_extra else ''}{'+' + '+'.join(aug) + ' ' if aug else ''}"
                      f"{'+pose(' + fusion + ') ' if fusion else ''}"
                      f"{name:>14} l2 {l2:<7g}: CV log-loss "
                      f"{r['log_loss']:.4f}, accuracy {r['accuracy_at_0.5']:.4f}, at 0.7: person "
                      f"{r['person_verified_at_0.7']:.4f} false rejected {r['false_rejected_at_0.7']:.4f}"
                      + (f" (extra false {r['extra_false_rejected_at_0.7']:.4f}; log-loss on the "
                         f"other rows {r['log_loss_without_extra_rows']:.4f})" if a.extra else "")
                      + (" augmented rows' log-loss " + ", ".join(f"{k} {r[f'log_loss_{k}_rows']:.4f}"
                                                               for k in kinds[1:])
                         + f"; criterion {r['criterion']:.4f}" if a.augment else ""),
                      flush=True)
    if a.pose:
        best = choose_augmented([r for r in rows if pose_eligible(r)])
    elif a.augment:
        best = choose_augmented(rows)
    else:
        best = min(rows, key=lambda r: (r["log_loss"], r.get("extra", False), r["l2"]))
    write_head(a.out, best, rows, a, x, y, extra, kind, cue, tiles if a.pose else None)
    if a.candidates_out:
        # Each pre-registered candidate with its own best setting by the same rule, for the figures.
        for use_extra, aug, fusion in candidates:
            mine = [r for r in rows if r.get("augment", []) == list(aug) and r.get("pose") == fusion
                    and r.get("extra", False) == use_extra and pose_eligible(r)]
            tag = "pose-" + (fusion or "none") + "".join("-" + k for k in aug)
            own = min(mine, key=lambda r: (r["criterion"], r["l2"]))
            write_head(f"{a.candidates_out}-{tag}.json", own, rows, a, x, y, extra,
                       kind, cue, tiles if a.pose else None)


def write_head(out, best, rows, a, x, y, extra, kind, cue, tiles):
    """Fits the head `best` (a row of the CV's grid) on every row it trains on and writes it."""
    name, tf, balanced = next(v for v in VARIANTS if v[0] == best["variant"])
    l2 = best["l2"]
    use = rows_used(kind, extra, best.get("extra", False), best.get("augment", []))
    x, y = x[use], y[use]
    xt = transform(x, tf)
    fusion = best.get("pose")
    if fusion == "head":
        xt = np.hstack([xt, cue[use][:, None]])
    wf, bf = fit_folded(xt, y, l2, balanced_weights(y) if balanced else None)
    pose = None
    if fusion:
        # The cue's weight: fitted beside the features ("head"), or 1 (A's log-odds + the cue's).
        pose = {"fusion": fusion, "weight": float(wf[-1]) if fusion == "head" else 1.0,
                "graph": os.path.basename(a.pose), "tiles": tiles}
        wf = wf[:-1] if fusion == "head" else wf
    head = {"kind": "logistic regression on mc3_18's 512-d pooled features"
                    + (" and the pose cue" if fusion else ""),
            "cut": a.cut, "variant": name, "transform": tf, "balanced": balanced, "l2": l2,
            "extra": (os.path.basename(a.extra) if best.get("extra") else None),
            **({"augment": best["augment"], "augment_rule": AUGMENT_RULE} if a.augment else {}),
            **({"pose_candidates": POSE_RULE} if a.pose else {}),
            "cv": {"folds": FOLDS, "grouped_by": "track (each static negative alone)", "seed": SEED,
                   "criterion": (AUGMENT_RULE if a.augment else "lowest mean log-loss over the held-out folds"
                                 + (" (every row, --extra's included, scored by every head)" if a.extra else "")),
                   "grid": rows},
            "training_clips": int(len(y)),
            "weight": [float(v) for v in wf], "bias": bf, **({"pose": pose} if pose else {})}
    with open(out, "w") as f:
        json.dump(head, f, indent=1)
        f.write("\n")
    print(f"chose {name}, l2 {l2:g}{', with --extra' if best.get('extra') else ''}"
          f"{', with the copies ' + '+'.join(best['augment']) if best.get('augment') else ''}"
          f"{', with the pose cue (' + fusion + ')' if fusion else ''} "
          f"(CV log-loss {best['log_loss']:.4f}"
          + (f", criterion {best['criterion']:.4f}" if "criterion" in best else "") + f"); wrote {out}")

if __name__ == "__main__":
    main()
