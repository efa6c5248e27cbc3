# SPDX-License-Identifier: MIT OR Apache-2.0
"""One-off: carries the labels checked by eye over to new track ids after a tracker change.

The element's tracker went from IoU >= 0.3 to >= 0.2 (src/tracks.rs DEFAULT_MIN_IOU), which
merges some tracks and renumbers the rest. A detection (frame, box) is the same in both
trackings, so each new track takes the label of the old tracks whose detections it holds. A
track made of old tracks of different labels keeps the label of at least 90 % of its
detections and is excluded otherwise. The motion columns come from dataset.py --write-labels.

  git show 4774afb:models/verifier/labels.tsv > /tmp/labels-old.tsv
  /usr/bin/python3 models/verifier/dataset.py ... --labels /tmp/motion.tsv --write-labels
  /usr/bin/python3 models/verifier/remap_labels.py --detections vtest-hog.txt \
      --old /tmp/labels-old.tsv --motion /tmp/motion.tsv --out models/verifier/labels.tsv
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clips as C  # noqa: E402


def tracks(dets, n, min_iou):
    t, out = C.Tracker(min_iou=min_iou), {}
    for fr in range(1, n + 1):
        boxes = [d[:4] for d in dets.get(fr, [])]
        for b, tid in zip(boxes, t.update(boxes)):
            if tid is not None:
                out.setdefault(tid, []).append((fr, b))
    return out


def rows(path):
    for line in open(path):
        if not line.startswith("#") and line.strip():
            yield line.rstrip("\n").split("\t")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detections", required=True)
    ap.add_argument("--frames", type=int, default=795)
    ap.add_argument("--old-iou", type=float, default=0.3)
    ap.add_argument("--old", required=True, help="labels.tsv of the old track ids")
    ap.add_argument("--motion", required=True, help="dataset.py --write-labels output")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    dets = C.read_detections(a.detections)
    old, new = tracks(dets, a.frames, a.old_iou), tracks(dets, a.frames, C.MIN_IOU)
    oldof = {(f, b): tid for tid, v in old.items() for f, b in v}
    lab = {int(v[0]): (v[6], v[7]) for v in rows(a.old)}
    mot = {int(v[0]): v for v in rows(a.motion)}
    hdr = [line for line in open(a.old) if line.startswith("#")]
    # The old header counts the old excluded tracks; 8 after the re-map (counted in the output).
    hdr = [line.replace("all 7 excluded tracks", "all 8 excluded tracks") for line in hdr]
    with open(a.out, "w") as out:
        out.write("# Labels of the HOG tracks of vtest.avi (track ids of models/verifier/clips.py's "
                  "tracker, IoU >= 0.2).\n")
        out.writelines(hdr[1:-1])
        out.write("# Re-mapped by remap_labels.py when the tracker's IoU went from 0.3 to 0.2: each track\n"
                  "# takes the label (after the look by eye) of the old tracks whose detections it holds\n"
                  "# (old id:detections, or 'old track N' when unchanged). A track made of old tracks of\n"
                  "# different labels keeps the label of >= 90 % of its detections, and is excluded otherwise.\n")
        out.write(hdr[-1])
        for tid, v in sorted(new.items()):
            cnt = {}
            for f, b in v:
                cnt[oldof[(f, b)]] = cnt.get(oldof[(f, b)], 0) + 1
            by = {}
            for o, k in cnt.items():
                by[lab[o][0]] = by.get(lab[o][0], 0) + k
            best = max(by, key=by.get)
            src = " ".join(f"{o}:{k}" for o, k in sorted(cnt.items()))
            if len(cnt) == 1 and len(old[next(iter(cnt))]) == len(v):
                label, note = best, lab[next(iter(cnt))][1] + f" (old track {src})"
            elif len(by) == 1:
                notes = sorted({lab[o][1] for o in cnt})
                label, note = best, f"from {src}, all {best}; " + " | ".join(notes)
            elif by[best] >= 0.9 * len(v):
                rest = ", ".join(f"{k} {n}" for k, n in by.items() if k != best)
                label, note = best, f"from {src}: {by[best]} of {len(v)} detections {best}, the rest {rest}"
            else:
                mixed = ", ".join(f"{k} {n}" for k, n in sorted(by.items()))
                label, note = "exclude", f"from {src}: mixed ({mixed}), excluded"
            out.write("\t".join(mot[tid][:6] + [label, note]) + "\n")


if __name__ == "__main__":
    main()
