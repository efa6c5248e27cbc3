# SPDX-License-Identifier: MIT OR Apache-2.0
"""Augmented copies of the training part's clips, for the heads' cross-validation (numpy only).

    python models/backbone/augment.py --data .cache/verifier/dataset.npz \
        --extra .cache/verifier/train-negatives.npz --out .cache/verifier/augment.npz

Every training clip of train_head.py (dataset.py's labelled training-part clips, then --extra's)
gets two copies, each with the same transform on all 16 tiles (seeded, so the file is the same
every time):
- `grey`: the clip in greyscale (luma 0.299 R + 0.587 G + 0.114 B in all three channels), flipped
  left-right with probability 1/2. Disclosed: this copy was added after seeing that the market
  street (a scene held out, never trained on) is black and white. It stands for a camera the
  training scene lacks (monochrome, infrared night mode), and nothing else of that scene is used.
- `zoom`: the person smaller or larger in the tile, as a detector's box sits looser or tighter on
  someone further away or nearer: a zoom factor s drawn log-uniformly in [0.7, 1.3]; s < 1 shrinks
  the tile to s x 112 at a random place and fills the border with the tile's edge pixels, s > 1
  takes a random 112 / s square and scales it up (bilinear). Greyscale with probability 1/2,
  flipped with probability 1/2.
The copies keep their source's label and its CV group (train_head.py's groups_of, `n<track>` for
--extra's), so a track and its copies always sit in one fold.

Out: x uint8 [M, 16, 112, 112, 3], y, group (str), kind (`grey` / `zoom`), source (row index in
train_head.py's order: dataset rows first, then --extra's).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_head as T  # noqa: E402

SEED = 0
ZOOM = (0.7, 1.3)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def grey(clip):
    g = np.rint(clip.astype(np.float32) @ LUMA).clip(0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def resize(clip, h, w):
    """Bilinear resize of [T, H, W, C] to [T, h, w, C] (pixel centres aligned, as cv2's)."""
    t, hh, ww, c = clip.shape
    ys = np.clip((np.arange(h) + 0.5) * hh / h - 0.5, 0, hh - 1)
    xs = np.clip((np.arange(w) + 0.5) * ww / w - 0.5, 0, ww - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, hh - 1)
    x1 = np.minimum(x0 + 1, ww - 1)
    fy = (ys - y0)[None, :, None, None]
    fx = (xs - x0)[None, None, :, None]
    f = clip.astype(np.float32)
    top = f[:, y0][:, :, x0] * (1 - fx) + f[:, y0][:, :, x1] * fx
    bot = f[:, y1][:, :, x0] * (1 - fx) + f[:, y1][:, :, x1] * fx
    return np.rint(top * (1 - fy) + bot * fy).clip(0, 255).astype(np.uint8)


def zoom(clip, s, rng):
    n = clip.shape[1]
    if s < 1:
        m = max(8, int(round(n * s)))
        small = resize(clip, m, m)
        oy, ox = rng.integers(0, n - m + 1, size=2)
        return np.pad(small, ((0, 0), (oy, n - m - oy), (ox, n - m - ox), (0, 0)), mode="edge")
    m = max(8, int(round(n / s)))
    oy, ox = rng.integers(0, n - m + 1, size=2)
    return resize(clip[:, oy:oy + m, ox:ox + m], n, n)


def augmented(clip, kind, rng):
    if kind == "grey":
        out = grey(clip)
    else:
        s = float(np.exp(rng.uniform(np.log(ZOOM[0]), np.log(ZOOM[1]))))
        out = zoom(clip, s, rng)
        if rng.random() < 0.5:
            out = grey(out)
    if rng.random() < 0.5:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--extra", help="train_negatives.py's clips, as train_head.py --extra")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    d = np.load(a.data)
    keep = T.training_clips(d)
    xs = [d["train_x"][keep]]
    ys = [d["train_y"][keep]]
    gs = [T.groups_of(d)[keep]]
    if a.extra:
        e = np.load(a.extra)
        xs.append(e["x"])
        ys.append(e["y"])
        gs.append(np.array([f"n{t}" for t in e["track"]]))
    x, y, g = np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)
    rng = np.random.default_rng(SEED)
    out, oy, og, ok, osrc = [], [], [], [], []
    for kind in ("grey", "zoom"):
        for i in range(len(y)):
            out.append(augmented(x[i], kind, rng))
            oy.append(y[i])
            og.append(g[i])
            ok.append(kind)
            osrc.append(i)
    np.savez(a.out, x=np.stack(out), y=np.array(oy, np.int64), group=np.array(og),
             kind=np.array(ok), source=np.array(osrc, np.int64))
    print(f"{len(out)} augmented copies of {len(y)} training clips -> {a.out}")


if __name__ == "__main__":
    main()
