# SPDX-License-Identifier: MIT OR Apache-2.0
"""Tests of a head adapted to one camera (models/backbone/adapt.py) and of the split by time
(models/scenes/split.py); numpy only, on small made-up sets, so they run anywhere in seconds.

    python models/backbone/test_adapt.py

- split.py: a track belongs to the part where its first scored clip starts; `exclude` clips adapt
  nothing; the test part keeps only the later tracks' rows, marks the earlier tracks' clips
  "adapt" (so eval.py counts them neither as alarms nor as dropped) and starts at --until; a
  frame below 1, or one after which no track starts, is refused naming the value.
- source_weights: the camera's rows sum to their share of the weight (natural: their share of the
  rows), class-balanced within each source, the training rows weigh nothing at share 1.
- search: on rows where the camera's classes follow another feature than the training part's,
  the CV gives the camera's rows more than their natural share, its choice is the grid's lowest
  log-loss on the camera's rows, and the head it fits sorts the camera's rows.
- adapt.py refuses, naming the value and before reading any training data: a base head it cannot
  adapt or cannot read, a folder that is no set, --until 0, no labelled track before --until, and
  only one label there; split.py writes the test part as a set eval.py reads.

Prints `N passed, N failed` and exits non-zero on any failure.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "scenes"))
import adapt as A  # noqa: E402
import split as S  # noqa: E402


def made_up_set():
    # Track 1 starts at 10 (person), 2 at 40 (false), 3 at 95 (exclude), 4 at 120 (person, a clip
    # at 90 dropped by the element), 5 at 150 (false); --until 100 puts 1-3 in the adaptation part.
    rows = [(1, 10, 1), (1, 60, 1), (2, 40, 0), (3, 95, -1), (4, 120, 1), (4, 170, 1), (5, 150, 0)]
    d = {"test_x": np.arange(len(rows))[:, None].astype(np.uint8),
         "test_kind": np.array(["clip"] * len(rows)),
         "test_clip": np.arange(len(rows), dtype=np.int64),
         "test_track": np.array([r[0] for r in rows], np.int64),
         "test_start": np.array([r[1] for r in rows], np.int64),
         "test_y": np.array([r[2] for r in rows], np.int64)}
    label = {1: "person", 2: "false-detection", 3: "exclude", 4: "person", 5: "false-detection"}
    clips = [{"index": i, "track": t, "start": s, "label": label[t], "part": "test"}
             for i, (t, s, _) in enumerate(rows)]
    clips.append({"index": len(rows), "track": 4, "start": 90, "label": "person", "part": None})
    return d, {"frames": 200, "fps": 10.0, "split": 0, "clips": clips}


def main():
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")

    d, info = made_up_set()
    check("tracks by their first clip", S.adapt_tracks(d, 100) == {1, 2, 3}, str(S.adapt_tracks(d, 100)))
    rows = S.adapt_rows(d, 100)
    check("adaptation rows: person and false clips of the early tracks, not exclude",
          rows.tolist() == [True, True, True, False, False, False, False], str(rows.tolist()))
    data, later = S.test_part(d, info, 100)
    check("test part: the later tracks' rows only", data["test_track"].tolist() == [4, 4, 5],
          str(data["test_track"].tolist()))
    check("test part: starts at --until", later["split"] == 99, str(later["split"]))
    parts = {c["index"]: c["part"] for c in later["clips"]}
    check("test part: the early tracks' clips marked adapt, the later ones' as they were",
          [parts[i] for i in range(8)] == ["adapt"] * 4 + ["test"] * 3 + [None], str(parts))
    check("the set itself is left as it was", all(c["part"] != "adapt" for c in info["clips"]))
    for until, word in ((0, "--until 0"), (200, "--until 200")):
        try:
            S.test_part(d, info, until)
            check(f"{word} refused", False, "accepted")
        except ValueError as e:
            check(f"{word} refused, naming it", word in str(e), str(e))

    y = np.array([1, 1, 1, 0, 1, 0, 1, 0], float)
    site = np.array([False] * 5 + [True] * 3)
    for share, want in (("natural", 3 / 8), (0.25, 0.25), (1.0, 1.0)):
        w = A.source_weights(y, site, share, balanced=True)
        check(f"share {share}: the camera's rows weigh {want:g}",
              abs(w[site].sum() - want) < 1e-12 and abs(w.sum() - 1) < 1e-12, f"{w[site].sum()}")
    w = A.source_weights(y, site, 0.5, balanced=True)
    check("class-balanced within each source", abs(w[~site & (y == 1)].sum() - w[~site & (y == 0)].sum()) < 1e-12
          and abs(w[site & (y == 1)].sum() - w[site & (y == 0)].sum()) < 1e-12, str(w))
    check("share 1: the training rows weigh nothing", not A.source_weights(y, site, 1.0, True)[~site].any())
    w = A.source_weights(y, site, 0.5, balanced=False)
    check("not balanced: equal within each source", np.allclose(w[:5], 0.1) and np.allclose(w[5:], 1 / 6), str(w))

    rng = np.random.default_rng(1)
    n, m = 400, 80
    xt = rng.normal(size=(n, 4))
    yt = (xt[:, 0] > 0).astype(float)
    xs = rng.normal(size=(m, 4))
    ys = (xs[:, 1] > 0).astype(float)
    xs[:, 0] = np.where(ys == 1, -1.0, 1.0) * np.abs(xs[:, 0])  # the training part's cue, reversed
    x = np.vstack([xt, xs])
    yy = np.concatenate([yt, ys])
    groups = np.array([f"t{i // 4}" for i in range(n)] + [f"site{i // 2}" for i in range(m)])
    is_site = np.arange(n + m) >= n
    grid, best, w, b = A.search(x, yy, groups, is_site, True, l2_grid=[1e-3, 1e-1], log=lambda _: None)
    check("the grid: every share and L2", len(grid) == len(A.SHARES) * 2, str(len(grid)))
    check("the choice is the lowest log-loss on the camera's rows",
          best["site_log_loss"] == min(r["site_log_loss"] for r in grid), str(best))
    check("the camera's rows get more than their natural share", best["share"] in (0.5, 1.0), str(best))
    acc = float((((xs @ w + b) > 0) == (ys == 1)).mean())
    check("the adapted head sorts the camera's rows", acc > 0.9, f"accuracy {acc}")

    with tempfile.TemporaryDirectory() as tmp:
        head = os.path.join(tmp, "head.json")
        with open(head, "w") as f:
            json.dump({"kind": "test", "pose": {"fusion": "sum", "weight": 1.0, "tiles": [0]}}, f)
        r = subprocess.run([sys.executable, os.path.join(HERE, "adapt.py"), "--head", head, "--model", "m.onnx",
                            "--pose", "p.onnx", "--data", "d.npz", "--site", tmp, "--until", "5",
                            "--out", os.path.join(tmp, "out.json")], capture_output=True, text=True)
        check("a base head with pose fusion 'sum' refused, naming it",
              r.returncode != 0 and "'sum'" in r.stderr, r.stderr.strip())

        def adapt(head_path, site, until):
            return subprocess.run([sys.executable, os.path.join(HERE, "adapt.py"), "--head", head_path,
                                   "--model", "m.onnx", "--data", "d.npz", "--site", site, "--until",
                                   str(until), "--out", os.path.join(tmp, "out.json")],
                                  capture_output=True, text=True)

        with open(head, "w") as f:
            json.dump({"kind": "test"}, f)
        r = adapt(os.path.join(tmp, "nope.json"), tmp, 5)
        check("a missing base head refused, naming it", r.returncode != 0 and "nope.json" in r.stderr
              and "Traceback" not in r.stderr, r.stderr.strip())
        r = adapt(head, os.path.join(tmp, "noset"), 5)
        check("a folder that is no set refused, naming it", r.returncode != 0 and "noset" in r.stderr
              and "Traceback" not in r.stderr, r.stderr.strip())
        site = os.path.join(tmp, "site")
        os.makedirs(site)
        np.savez(os.path.join(site, "dataset.npz"), **d)
        with open(os.path.join(site, "clips.json"), "w") as f:
            json.dump(info, f)
        r = adapt(head, site, 0)
        check("--until 0 refused, naming it", r.returncode != 0 and "--until 0" in r.stderr
              and "Traceback" not in r.stderr, r.stderr.strip())
        r = adapt(head, site, 5)
        check("no track before --until: refused, naming the frame",
              r.returncode != 0 and "before frame 5" in r.stderr, r.stderr.strip())
        r = adapt(head, site, 30)
        check("one label only before --until: refused, saying so",
              r.returncode != 0 and "only person clips" in r.stderr, r.stderr.strip())
        r = subprocess.run([sys.executable, os.path.join(HERE, "..", "scenes", "split.py"), "--set", site,
                            "--until", "100", "--test-out", os.path.join(tmp, "later")],
                           capture_output=True, text=True)
        later = S.load(os.path.join(tmp, "later"))[0] if r.returncode == 0 else None
        check("split.py writes the test part as a set", later is not None
              and later["test_track"].tolist() == [4, 4, 5], r.stderr.strip())
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
