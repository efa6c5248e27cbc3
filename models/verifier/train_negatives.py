# SPDX-License-Identifier: MIT OR Apache-2.0
"""More training material for the heads, from the training part only: the tracks of vtest.avi's
HOG detections at the lower hitThreshold (models/scenes/detect.py, 0.0) that lie on no track of
the footage's own detections (hitThreshold 1.0, labelled in labels.tsv). Those are mostly what a
detector asked for more gets wrong (walls, the van, the tripod, patches of lawn), each labelled
by eye.

Run with Debian's python3-opencv (/usr/bin/python3):

    /usr/bin/python3 models/verifier/train_negatives.py --video V --detections D --low D_LOW \
        --labels L.tsv --sheets DIR --write-labels     # first labels from motion + contact sheets
    /usr/bin/python3 models/verifier/train_negatives.py --video V --detections D --low D_LOW \
        --labels L.tsv --out X.npz                      # the clips of the labelled tracks

- Tracks: the element's tracker (clips.py) over the lower-threshold detections of the whole video.
- Training part only: a track's detections up to frame SPLIT (477, dataset.py's split); its
  element clips that end by SPLIT (not dropped) and windows along it every WINDOW_STEP detections
  that end by SPLIT. A track with none of these is left out. The held-out part is never read.
- New: a track is kept only when none of its training-part detections overlaps (IoU >= 0.5, same
  frame) a detection of a labelled `person` or `exclude` track of labels.tsv; tracks on labelled
  persons would only repeat training material the heads already have.
- `--write-labels`: L.tsv gets each kept track's first label from motion (dataset.py's rule) and
  DIR the contact sheets (tiles spread over the training-part detections); a person then sets
  the label by eye and says why. Without it, every kept track needs a label in L.tsv.
- `--out`: x uint8 [N,16,112,112,3], y (0 false-detection, 1 person), track, kind (clip or
  window) of every clip of a track labelled person or false-detection (`exclude` left out).
"""

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clips as C  # noqa: E402
import dataset as D  # noqa: E402

SPLIT = 477
WINDOW_STEP = 8
OVERLAP_IOU = 0.5


def training_items(frames, track, clips, fw, fh):
    """(kind, crops) of the track's training-part clips and windows."""
    out = [("clip", c["crops"]) for c in clips
           if c["status"] not in ("overflow", "lost-dropped") and c["end"] <= SPLIT and c["crops"]]
    for k in range(0, len(track), WINDOW_STEP):
        crops = C.window_crops(track, k, fw, fh)
        if crops is not None and crops[-1][0] <= SPLIT:
            out.append(("window", crops))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", required=True)
    ap.add_argument("--detections", required=True, help="the footage's own (labelled) detections")
    ap.add_argument("--low", required=True, help="the lower-threshold detections")
    ap.add_argument("--footage-labels", default=os.path.join(HERE, "labels.tsv"))
    ap.add_argument("--labels", required=True, help="the labels of the new tracks (TSV)")
    ap.add_argument("--sheets")
    ap.add_argument("--write-labels", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()

    frames = D.read_frames(a.video)
    n = len(frames)
    fh, fw = frames[0].shape[:2]
    _, ref_tracks = C.element_clips(C.read_detections(a.detections), n, fw, fh)
    ref_labels, _ = D.read_labels(a.footage_labels)
    taken = {}  # frame -> boxes of labelled person / exclude tracks
    for tid, t in ref_tracks.items():
        if ref_labels.get(tid) in ("person", "exclude"):
            for f, b, _ in t:
                taken.setdefault(f, []).append(b)
    clips, tracks = C.element_clips(C.read_detections(a.low), n, fw, fh)
    by_track = {}
    for c in clips:
        by_track.setdefault(c["track"], []).append(c)
    kept, items = {}, {}
    on_person = 0
    for tid, t in sorted(tracks.items()):
        part = [d for d in t if d[0] <= SPLIT]
        if not part:
            continue
        it = training_items(frames, t, by_track.get(tid, []), fw, fh)
        if not it:
            continue
        if any(C.iou(b, r) >= OVERLAP_IOU for f, b, _ in part for r in taken.get(f, [])):
            on_person += 1
            continue
        kept[tid] = part
        items[tid] = it
    print(f"{len(tracks)} lower-threshold tracks; {len(kept) + on_person} with training-part clips, "
          f"{on_person} of them on a labelled person or excluded track (left out), {len(kept)} kept "
          f"({sum(len(v) for v in items.values())} clips and windows)")
    if a.write_labels:
        own = {tid: [c for c in by_track.get(tid, []) if c["end"] <= SPLIT] for tid in kept}
        D.write_labels(frames, kept, own, a.labels)
        sheets = D.contact_sheets(frames, kept, own, a.sheets)
        print(f"wrote {a.labels} and {len(sheets)} contact sheets under {a.sheets}")
        return
    labels, _ = D.read_labels(a.labels)
    missing = sorted(set(kept) - set(labels))
    if missing:
        sys.exit(f"{a.labels} has no label for tracks {missing}: run with --write-labels")
    xs, ys, ts, ks = [], [], [], []
    for tid, it in sorted(items.items()):
        lab = labels[tid]
        if lab == "exclude":
            continue
        for kind, crops in it:
            xs.append(D.clip_pixels(frames, crops))
            ys.append(D.CLASSES.index(lab))
            ts.append(tid)
            ks.append(kind)
    np.savez(a.out, x=np.stack(xs), y=np.array(ys, np.int64), track=np.array(ts, np.int64),
             kind=np.array(ks))
    y = np.array(ys)
    print(f"{len(xs)} clips -> {a.out}: {int((y == 1).sum())} person, {int((y == 0).sum())} "
          f"false-detection, of {len(set(ts))} tracks")


if __name__ == "__main__":
    main()
