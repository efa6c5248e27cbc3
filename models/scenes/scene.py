# SPDX-License-Identifier: MIT OR Apache-2.0
"""Evaluation sets beyond the verifier's held-out part: the clips the element cuts from a
detection file, their tracks labelled by eye, as a dataset eval.py scores.

Run with Debian's python3-opencv (/usr/bin/python3):

    /usr/bin/python3 models/scenes/scene.py --video V --detections D --labels L.tsv \
        --out DIR [--first-frame F] [--fps N] [--write-labels]

- The tracks and clips are those of the element (clip-per=object, built-in tracking, defaults),
  made by models/verifier/clips.py over the whole video, so the tracker sees what the element
  would; only clips that start at or after --first-frame are kept (for vtest.avi, the held-out
  part: frame 478 on). clips.py forgets a track one frame later than the element has since
  bc5dfec (missed <= 15, not < 15), so that the labels' track ids stay put: on the market street
  390 of the element's 431 clips are cut the same (docs/verifier.md).
- `--write-labels` writes each kept track's first label from motion (as dataset.py does) to L.tsv
  and contact sheets to DIR/sheets/ (one row per track, tiles spread over its detections); a
  person then sets the `label` column by eye and says why in `note`. Without it, every kept
  track must have a label in L.tsv.
- Output: DIR/dataset.npz (test_x uint8 [N,16,112,112,3] and test_kind/clip/track/y/start, as
  dataset.py writes them; no training part) and DIR/clips.json (frames, fps, split =
  first-frame - 1, every clip with its label and part).
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "verifier"))
import clips as C  # noqa: E402
import dataset as D  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", required=True)
    ap.add_argument("--detections", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--first-frame", type=int, default=1)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--write-labels", action="store_true")
    a = ap.parse_args()

    frames = D.read_frames(a.video)
    n = len(frames)
    fh, fw = frames[0].shape[:2]
    dets = C.read_detections(a.detections)
    clips, tracks = C.element_clips(dets, n, fw, fh)
    kept = [c for c in clips if c["start"] >= a.first_frame]
    ids = sorted({c["track"] for c in kept})
    by_track = {}
    for c in kept:
        by_track.setdefault(c["track"], []).append(c)
    print(f"{n} frames {fw}x{fh}, {sum(len(v) for v in dets.values())} detections, "
          f"{len(tracks)} tracks, {len(clips)} element clips; from frame {a.first_frame}: "
          f"{len(kept)} clips of {len(ids)} tracks")
    sub = {t: tracks[t] for t in ids}
    if a.write_labels:
        D.write_labels(frames, sub, by_track, a.labels)
        sheets = D.contact_sheets(frames, sub, by_track, os.path.join(a.out, "sheets"))
        print(f"wrote {a.labels} and {len(sheets)} contact sheets under {a.out}/sheets")
        return
    labels, _ = D.read_labels(a.labels)
    missing = [t for t in ids if t not in labels]
    if missing:
        sys.exit(f"{a.labels} has no label for tracks {missing}: run with --write-labels")
    xs, meta, record = [], [], []
    for i, c in enumerate(clips):
        if c["start"] < a.first_frame:
            continue
        part = None if c["status"] in ("overflow", "lost-dropped") else "test"
        lab = labels[c["track"]]
        record.append({"index": i, "track": c["track"], "start": c["start"], "end": c["end"],
                       "status": c["status"], "real": c["real"], "label": lab, "part": part,
                       "crops": c["crops"]})
        if part == "test":
            xs.append(D.clip_pixels(frames, c["crops"]))
            meta.append(("clip", i, c["track"], D.CLASSES.index(lab) if lab in D.CLASSES else -1,
                         c["start"]))
    os.makedirs(a.out, exist_ok=True)
    np.savez(os.path.join(a.out, "dataset.npz"), test_x=np.stack(xs),
             test_kind=np.array([m[0] for m in meta]),
             test_clip=np.array([m[1] for m in meta], np.int64),
             test_track=np.array([m[2] for m in meta], np.int64),
             test_y=np.array([m[3] for m in meta], np.int64),
             test_start=np.array([m[4] for m in meta], np.int64))
    with open(os.path.join(a.out, "clips.json"), "w") as f:
        json.dump({"frames": n, "fps": a.fps, "split": a.first_frame - 1, "width": fw, "height": fh,
                   "clips": record, "static": {}}, f)
    ys = np.array([m[3] for m in meta])
    print(f"{len(xs)} scored clips: {int((ys == 1).sum())} person, {int((ys == 0).sum())} "
          f"false-detection, {int((ys < 0).sum())} excluded")


if __name__ == "__main__":
    main()
