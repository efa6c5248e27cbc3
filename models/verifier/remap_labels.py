# SPDX-License-Identifier: MIT OR Apache-2.0
"""Carries the labels checked by eye over to new track ids: after a tracker change, or (with
--renumber) after the detections' order within frames changed.

--renumber: the same detections, the same tracker, another order within some frames (OpenCV's
HOG returned each frame's boxes in a thread-dependent order until models/hog_detections.py began
to sort them). The tracker numbers new tracks in detection order, so only the ids of tracks born
in the same frame can change. Every new track must hold exactly the detections of one old track;
its row is the old one with the new id. Anything else stops with the tracks named.

  /usr/bin/python3 models/verifier/remap_labels.py --renumber --old-detections OLD.txt \
      --detections vtest-hog.txt --old models/verifier/labels.tsv --out /tmp/labels.tsv

Without --renumber (one-off, kept for the record):

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


def renumber(a):
    new = tracks(C.read_detections(a.detections), a.frames, C.MIN_IOU)
    old = tracks(C.read_detections(a.old_detections), a.frames, C.MIN_IOU)
    oldof = {(f, b): tid for tid, v in old.items() for f, b in v}
    rows_by_id = {int(v[0]): v for v in rows(a.old)}
    mapping = {}
    for tid, v in sorted(new.items()):
        olds = {oldof.get((f, b)) for f, b in v}
        o = next(iter(olds))
        if len(olds) != 1 or o is None or sorted(old[o]) != sorted(v):
            sys.exit(f"new track {tid} is not one old track (it holds detections of {sorted(olds, key=str)})")
        mapping[tid] = o
    if sorted(mapping.values()) != sorted(old):
        sys.exit("the old and the new trackings do not have the same tracks")
    moved = {n: o for n, o in mapping.items() if n != o}
    hdr = [line for line in open(a.old) if line.startswith("#")]
    with open(a.out, "w") as out:
        out.writelines(hdr[:-1])
        out.write("# Renumbered by remap_labels.py --renumber when hog_detections.py began to sort each\n"
                  "# frame's boxes (OpenCV's order depends on its threads; ids of tracks born in one frame\n"
                  f"# followed it): {len(moved)} of {len(mapping)} tracks took a new id, every row is unchanged.\n")
        out.write(hdr[-1])
        for tid in sorted(mapping):
            out.write("\t".join([str(tid)] + rows_by_id[mapping[tid]][1:]) + "\n")
    print(f"{len(moved)} of {len(mapping)} tracks renumbered: "
          + ", ".join(f"{o}->{n}" for n, o in sorted(moved.items())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detections", required=True)
    ap.add_argument("--renumber", action="store_true")
    ap.add_argument("--old-detections", help="with --renumber: the detections the old ids come from")
    ap.add_argument("--frames", type=int, default=795)
    ap.add_argument("--old-iou", type=float, default=0.3)
    ap.add_argument("--old", required=True, help="labels.tsv of the old track ids")
    ap.add_argument("--motion", help="dataset.py --write-labels output (not with --renumber)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.renumber:
        if not a.old_detections:
            sys.exit("--renumber needs --old-detections")
        return renumber(a)
    if not a.motion:
        sys.exit("--motion is needed without --renumber")
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
