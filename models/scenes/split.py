# SPDX-License-Identifier: MIT OR Apache-2.0
"""One camera's labelled set split by time: the tracks an integrator labelled to adapt the head
(models/backbone/adapt.py), and the later tracks it is judged on.

    python models/scenes/split.py --set .cache/scenes/market --until 900 --test-out DIR

A track belongs to the part in which its first scored clip starts: adaptation before frame
--until, test from it on. The test part is written as a set of its own (dataset.npz with the test
tracks' rows, clips.json with the adaptation tracks' clips marked part "adapt" and split =
until - 1), so eval.py scores it like any set. Needs numpy only.
"""

import argparse
import json
import os
import sys

import numpy as np


def load(set_dir):
    """(dataset arrays, clips.json) of a set folder; ValueError naming what is missing."""
    paths = [os.path.join(set_dir, n) for n in ("dataset.npz", "clips.json")]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"{set_dir}: not a set folder of scene.py (no {', '.join(missing)})")
    d = np.load(paths[0])
    with open(paths[1]) as f:
        return {k: d[k] for k in d.files}, json.load(f)


def first_starts(d):
    """The frame each track's first scored clip starts on."""
    first = {}
    for t, s in zip(d["test_track"].tolist(), d["test_start"].tolist()):
        first[t] = min(first.get(t, s), s)
    return first


def adapt_tracks(d, until):
    """The tracks whose first scored clip starts before frame `until`."""
    if until < 1:
        raise ValueError(f"--until {until}: a frame number >= 1")
    return {t for t, s in first_starts(d).items() if s < until}


def adapt_rows(d, until):
    """Mask of the rows (clips) that adapt the head: the adaptation tracks' clips labelled person
    or false-detection (`exclude` tracks are used in neither part)."""
    tracks = adapt_tracks(d, until)
    return np.isin(d["test_track"], sorted(tracks)) & (d["test_y"] >= 0)


def test_rows(d, until):
    """Mask of the rows of the tracks starting at frame `until` or later."""
    return ~np.isin(d["test_track"], sorted(adapt_tracks(d, until)))


def test_part(d, info, until):
    """(dataset, clips.json) of the tracks starting at frame `until` or later."""
    tracks = adapt_tracks(d, until)
    keep = test_rows(d, until)
    if not keep.any():
        raise ValueError(f"--until {until}: every track starts before it, no test part is left")
    data = {k: v[keep] for k, v in d.items() if k.startswith("test_")}
    clips = [dict(c, part="adapt") if c["track"] in tracks else c for c in info["clips"]]
    return data, dict(info, split=until - 1, clips=clips)


def counts(d, mask):
    y, t = d["test_y"][mask], d["test_track"][mask]
    return (f"{int((y == 1).sum())} person clips of {len(set(t[y == 1].tolist()))} tracks, "
            f"{int((y == 0).sum())} false clips of {len(set(t[y == 0].tolist()))} tracks")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", required=True, help="a set folder (scene.py: dataset.npz, clips.json)")
    ap.add_argument("--until", type=int, required=True, help="the first frame of the test part")
    ap.add_argument("--test-out", required=True, help="the folder the test part is written to")
    a = ap.parse_args()
    try:
        d, info = load(a.set)
        data, test_info = test_part(d, info, a.until)
    except ValueError as e:
        sys.exit(str(e))
    os.makedirs(a.test_out, exist_ok=True)
    np.savez(os.path.join(a.test_out, "dataset.npz"), **data)
    with open(os.path.join(a.test_out, "clips.json"), "w") as f:
        json.dump(test_info, f)
    test = test_rows(d, a.until)
    print(f"{a.set}: adaptation (tracks starting before frame {a.until}): "
          f"{counts(d, adapt_rows(d, a.until))}; test part (from frame {a.until}): "
          f"{counts(d, test)}; wrote {a.test_out}")


if __name__ == "__main__":
    main()
