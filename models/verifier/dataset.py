# SPDX-License-Identifier: MIT OR Apache-2.0
"""Builds the verifier's dataset from the real footage (vtest.avi + its HOG detections).

Run with Debian's python3-opencv (/usr/bin/python3):

    /usr/bin/python3 models/verifier/dataset.py --video V --detections D --out .cache/verifier

What it makes (all under --out, ignored by git, except the labels file, which is committed):
- The tracks of the HOG boxes and the clips iguardverify makes of them (clip-per=object,
  built-in tracking, the element's defaults; see clips.py), cropped like the element: the box
  widened by 0.15 on each side, made square (the 112x112 tile), kept in the frame, smoothed,
  and resized bilinearly to 112x112.
- A first label per track from its motion (`--write-labels`), written to the labels file; a
  person then corrects it by eye on the contact sheets (sheets/track-*.png) and the labels file
  records each correction. Without `--write-labels` the labels file is read and every track
  must be in it.
- Training windows: 16-frame clips along every labelled track, starting every 4th detection,
  made the same way as the element's clips, so there is more to learn from than the alarms.
- Static negatives: boxes where the detector fired at some time (its places and sizes), at a
  time when no detection touches them on any of the clip's frames, and where the picture does
  not change (so no person the detector missed walks through them).
- The split by time: frames 1..SPLIT (the first 60 %) train, the rest test. A clip belongs to a
  part when all its frames do; the few clips across the boundary are left out.

Output: dataset.npz (uint8 clips [N,16,112,112,3] RGB and their metadata), clips.json (every
element clip with its track, frames, crops and label), and the contact sheets.
"""

import argparse
import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clips as C  # noqa: E402

TILE = 112
SPLIT_SHARE = 0.6
WINDOW_STEP = 4
NEGATIVES = {"train": 360, "test": 120}
SEED = 15
# The first label, from motion. A track of at least LONG_TRACK detections is labelled `person`
# when its centre moves at least MOTION_PERSON box heights between the mean of its first and of
# its last few detections. A shorter track says too little about its motion, so its first clip's
# pixels decide: `person` when the mean absolute change between the clip's first tile and any
# later one reaches PIXEL_PERSON levels (someone walking through the crop), else
# `false-detection`.
LONG_TRACK = 8
MOTION_PERSON = 0.25
PIXEL_PERSON = 12.0
HERE = os.path.dirname(os.path.abspath(__file__))
LABELS_FILE = os.path.join(HERE, "labels.tsv")
CLASSES = ["false-detection", "person"]


def read_frames(path):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        sys.exit(f"cannot open {path!r}")
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    if not frames:
        sys.exit(f"no frames decoded from {path!r}")
    return frames


def tile(frames, crop):
    f, x, y, w, h = crop
    return cv2.resize(frames[f - 1][y:y + h, x:x + w], (TILE, TILE), interpolation=cv2.INTER_LINEAR)


def clip_pixels(frames, crops, length=C.TEMPORAL):
    tiles = [tile(frames, c) for c in crops]
    while len(tiles) < length:  # completed like the element: the last tile repeated
        tiles.append(tiles[-1])
    return np.stack(tiles)


def motion(track):
    """Displacement of the track's centre, in median box heights, between the mean of its first
    and of its last min(5, n/2) detections."""
    n = len(track)
    k = max(1, min(5, n // 2))
    cen = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for _, b, _ in track])
    h = float(np.median([b[3] - b[1] for _, b, _ in track]))
    return float(np.linalg.norm(cen[-k:].mean(0) - cen[:k].mean(0)) / max(h, 1.0))


def pixel_change(frames, clip):
    px = clip_pixels(frames, clip["crops"]).astype(np.int16)
    return float(np.abs(px[1:] - px[:1]).mean(axis=(1, 2, 3)).max())


def motion_label(frames, track, clips):
    """(label, why) from motion alone, as described at MOTION_PERSON."""
    m = motion(track)
    if len(track) >= LONG_TRACK or not clips:
        return ("person" if m >= MOTION_PERSON else "false-detection"), f"track moved {m:.2f} heights"
    ch = pixel_change(frames, clips[0])
    return ("person" if ch >= PIXEL_PERSON else "false-detection"), f"pixels changed {ch:.1f}"


def write_labels(frames, tracks, by_track, path):
    with open(path, "w") as f:
        f.write("# track\tfirst\tlast\tdetections\tmotion\tmotion_label\tlabel\tnote\n")
        for tid in sorted(tracks):
            t = tracks[tid]
            lab, why = motion_label(frames, t, [c for c in by_track.get(tid, []) if c["crops"]])
            f.write(f"{tid}\t{t[0][0]}\t{t[-1][0]}\t{len(t)}\t{why}\t{lab}\t{lab}\t\n")


def read_labels(path):
    labels, notes = {}, {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            v = line.rstrip("\n").split("\t")
            tid, lab = int(v[0]), v[6]
            if lab not in CLASSES + ["exclude"]:
                sys.exit(f"{path}: track {tid} has label {lab!r}, not one of {CLASSES} or 'exclude'")
            labels[tid] = lab
            notes[tid] = v[7] if len(v) > 7 else ""
    return labels, notes


def contact_sheets(frames, tracks, clips_by_track, out_dir, per_sheet=12, columns=8, size=80):
    """One row per track: `columns` tiles spread over its detections, and a text panel."""
    os.makedirs(out_dir, exist_ok=True)
    ids = sorted(tracks)
    paths = []
    for s in range(0, len(ids), per_sheet):
        rows = []
        for tid in ids[s:s + per_sheet]:
            t = tracks[tid]
            own = [c for c in clips_by_track.get(tid, []) if c["crops"]]
            if len(t) >= columns or not own:
                # Spread over the track's detections: what it is over its whole life.
                picks = np.linspace(0, len(t) - 1, columns).round().astype(int)
                fh, fw = frames[0].shape[:2]
                crops = [(t[i][0],) + C.fit_frame(C.crop_target(t[i][1], fw, fh), fw, fh) for i in picks]
            else:
                # A short track: its first clip's tiles, as the verifier sees them.
                crops = own[0]["crops"]
                crops = [crops[i] for i in np.linspace(0, len(crops) - 1, columns).round().astype(int)]
            cells = []
            for f, x, y, w, h in crops:
                cell = cv2.resize(frames[f - 1][y:y + h, x:x + w], (size, size))
                cv2.putText(cell, str(f), (2, size - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                            (255, 255, 0), 1, cv2.LINE_AA)
                cells.append(cell)
            panel = np.full((size, 190, 3), 30, np.uint8)
            size_txt = f"box {int(np.median([b[2] - b[0] for _, b, _ in t]))}x{int(np.median([b[3] - b[1] for _, b, _ in t]))}"
            lab, why = motion_label(frames, t, [c for c in clips_by_track.get(tid, []) if c["crops"]])
            lines = [f"track {tid}", f"frames {t[0][0]}-{t[-1][0]}",
                     f"{len(t)} dets, {len(clips_by_track.get(tid, []))} clips", why,
                     f"-> {lab}, {size_txt}"]
            for j, text in enumerate(lines):
                cv2.putText(panel, text, (4, 14 + 15 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                            (255, 255, 255), 1, cv2.LINE_AA)
            rows.append(np.concatenate([panel] + cells, axis=1))
        sheet = np.concatenate(rows, axis=0)
        p = os.path.join(out_dir, f"track-{s // per_sheet:02d}.png")
        cv2.imwrite(p, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        paths.append(p)
    return paths


def static_negatives(frames, dets, split, rng, count, part):
    """Static background clips: the box of a detection of the same part (its place and size),
    at a time when no detection touches its crop on any of the clip's 16 frames, and when its
    pixels hardly change (mean absolute difference between its first and every later frame under
    6 levels, so no person the detector missed walks through). Taking the detector's own places
    gives the negatives the backgrounds people are seen on; boxes at random places fell mostly
    on the lawn, and a first model learned that grass means "no person" (see NOTES)."""
    n = len(frames)
    fh, fw = frames[0].shape[:2]
    lo, hi = (1, split - C.TEMPORAL + 1) if part == "train" else (split + 1, n - C.TEMPORAL + 1)
    boxes = [d[:4] for f, v in sorted(dets.items()) if lo <= f <= hi + C.TEMPORAL - 1 for d in v]
    out, tries = [], 0
    while len(out) < count and tries < count * 200:
        tries += 1
        box = boxes[rng.integers(len(boxes))]
        start = int(rng.integers(lo, hi + 1))
        crop = C.fit_frame(C.crop_target(box, fw, fh), fw, fh)
        cx, cy, cw, ch = crop
        region = (cx, cy, cx + cw, cy + ch)
        if any(C.iou(region, d[:4]) > 0 for f in range(start, start + C.TEMPORAL)
               for d in dets.get(f, [])):
            continue
        crops = [(f, cx, cy, cw, ch) for f in range(start, start + C.TEMPORAL)]
        px = clip_pixels(frames, crops).astype(np.int16)
        change = float(np.abs(px[1:] - px[:1]).mean(axis=(1, 2, 3)).max())
        if change >= 6.0:
            continue
        out.append({"start": start, "crop": crop, "change": change, "pixels": px.astype(np.uint8)})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", required=True)
    ap.add_argument("--detections", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--labels", default=LABELS_FILE)
    ap.add_argument("--write-labels", action="store_true",
                    help="write the motion labels to --labels (overwrites it) and make the sheets")
    a = ap.parse_args()

    frames = read_frames(a.video)
    n = len(frames)
    fh, fw = frames[0].shape[:2]
    dets = C.read_detections(a.detections)
    clips, tracks = C.element_clips(dets, n, fw, fh)
    split = int(round(SPLIT_SHARE * n))
    by_track = {}
    for c in clips:
        by_track.setdefault(c["track"], []).append(c)
    print(f"{n} frames {fw}x{fh}, {sum(len(v) for v in dets.values())} detections, "
          f"{len(tracks)} tracks, {len(clips)} element clips; split after frame {split}")

    if a.write_labels:
        write_labels(frames, tracks, by_track, a.labels)
        sheets = contact_sheets(frames, tracks, by_track, os.path.join(a.out, "sheets"))
        print(f"wrote {a.labels} and {len(sheets)} contact sheets under {a.out}/sheets")
        return

    labels, notes = read_labels(a.labels)
    missing = sorted(set(tracks) - set(labels))
    if missing:
        sys.exit(f"{a.labels} has no label for tracks {missing}: run with --write-labels")

    samples = {"train": [], "test": []}
    meta = {"train": [], "test": []}
    # The element's clips: the alarms. The test part is scored from these.
    record = []
    for i, c in enumerate(clips):
        if c["status"] in ("overflow", "lost-dropped"):
            part = None
        elif c["end"] <= split:
            part = "train"
        elif c["start"] > split:
            part = "test"
        else:
            part = "boundary"
        lab = labels[c["track"]]
        record.append({"index": i, "track": c["track"], "start": c["start"], "end": c["end"],
                       "status": c["status"], "real": c["real"], "label": lab, "part": part,
                       "crops": c["crops"]})
        # Held-out clips of excluded tracks are kept (label -1): they are alarms all the same.
        if part == "train" and lab != "exclude" or part == "test":
            samples[part].append(clip_pixels(frames, c["crops"]))
            meta[part].append(("clip", i, c["track"], CLASSES.index(lab) if lab in CLASSES else -1,
                               c["start"]))
    # Training windows along the tracks, inside the training part only.
    for tid, t in sorted(tracks.items()):
        lab = labels[tid]
        if lab == "exclude":
            continue
        for k in range(0, len(t), WINDOW_STEP):
            crops = C.window_crops(t, k, fw, fh)
            if crops is None or crops[-1][0] > split:
                continue
            samples["train"].append(clip_pixels(frames, crops))
            meta["train"].append(("window", -1, tid, CLASSES.index(lab), crops[0][0]))
    rng = np.random.default_rng(SEED)
    negs = {}
    for part in ("train", "test"):
        negs[part] = static_negatives(frames, dets, split, rng, NEGATIVES[part], part)
        for j, s in enumerate(negs[part]):
            samples[part].append(s["pixels"])
            meta[part].append(("static", j, -1, 0, s["start"]))
    os.makedirs(a.out, exist_ok=True)
    arrays = {}
    for part in ("train", "test"):
        arrays[f"{part}_x"] = np.stack(samples[part])
        arrays[f"{part}_kind"] = np.array([m[0] for m in meta[part]])
        arrays[f"{part}_clip"] = np.array([m[1] for m in meta[part]], np.int64)
        arrays[f"{part}_track"] = np.array([m[2] for m in meta[part]], np.int64)
        arrays[f"{part}_y"] = np.array([m[3] for m in meta[part]], np.int64)
        arrays[f"{part}_start"] = np.array([m[4] for m in meta[part]], np.int64)
    np.savez(os.path.join(a.out, "dataset.npz"), **arrays)
    with open(os.path.join(a.out, "clips.json"), "w") as f:
        json.dump({"frames": n, "fps": 10, "split": split, "width": fw, "height": fh,
                   "clips": record,
                   "static": {p: [{"start": s["start"], "crop": s["crop"], "change": s["change"]}
                                  for s in negs[p]] for p in negs}}, f)
    # A sheet of static negatives, to look at.
    cells = [cv2.resize(s["pixels"][0], (80, 80)) for s in negs["train"][:96] + negs["test"][:48]]
    while len(cells) % 16:
        cells.append(np.zeros((80, 80, 3), np.uint8))
    sheet = np.concatenate([np.concatenate(cells[r:r + 16], 1) for r in range(0, len(cells), 16)], 0)
    os.makedirs(os.path.join(a.out, "sheets"), exist_ok=True)
    cv2.imwrite(os.path.join(a.out, "sheets", "static.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    for part in ("train", "test"):
        kinds = arrays[f"{part}_kind"]
        ys = arrays[f"{part}_y"]
        desc = ", ".join(f"{k}: {int(((kinds == k) & (ys == 1)).sum())} person / "
                         f"{int(((kinds == k) & (ys == 0)).sum())} false"
                         for k in ("clip", "window", "static"))
        print(f"{part}: {len(ys)} clips ({desc}, {int((ys < 0).sum())} excluded)")
    print(f"element clips across the split, left out: {sum(r['part'] == 'boundary' for r in record)}")


if __name__ == "__main__":
    main()
