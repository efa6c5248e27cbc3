# SPDX-License-Identifier: MIT OR Apache-2.0
"""Tracks and per-object clips of the HOG detections, made the way iguardverify makes them.

This mirrors, in Python, what the element does with `clip-per=object` and `tracking=builtin`
(src/tracks.rs and src/clip.rs), at the element's defaults: the tracker matches id-less boxes
greedily by IoU (>= 0.2) against each track's box moved by its velocity, and forgets a track
unseen for more than `track-timeout` (15) frames. A tracked box that is not already followed,
not in its object's cooldown (30 frames after its last clip) and not beyond
`max-clips-per-source` (8) starts a clip. On every frame the clip's crop target is the box
clamped to the frame, widened by `roi-margin` (0.15 of the box on each side), grown to the
tile's aspect ratio around its centre; the crop moves halfway towards it (smoothing 0.5) and is
shrunk and moved to fit the frame. A clip whose object is missing for 15 frames ends: the tiles
sampled after the object was last seen are cut (they show where it was, not it), then it is
completed by repeating its last tile with >= `min-frames` (8) real tiles, dropped otherwise.

Only numpy here; the caller crops and resizes the pixels (OpenCV's bilinear resize, which is
what the element's sampler approximates).
"""

import math

TRACK_TIMEOUT = 15
MIN_IOU = 0.2
VELOCITY_GAIN = 0.5
CROP_SMOOTHING = 0.5
ROI_MARGIN = 0.15
TEMPORAL = 16
COOLDOWN = 30
MAX_CLIPS = 8
MIN_FRAMES = 8


def read_detections(path):
    """MOTChallenge file -> {frame (1-based): [(x0, y0, x1, y1, conf), ...]} in file order."""
    frames = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            v = line.split(",")
            fr, x, y, w, h, c = int(v[0]), float(v[2]), float(v[3]), float(v[4]), float(v[5]), float(v[6])
            frames.setdefault(fr, []).append((x, y, x + w, y + h, c))
    return frames


def iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if not (w > 0 and h > 0):
        return 0.0
    inter = w * h
    area = lambda r: max(r[2] - r[0], 0.0) * max(r[3] - r[1], 0.0)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


class Tracker:
    """src/tracks.rs: greedy IoU matching against velocity-predicted boxes."""

    def __init__(self, timeout=TRACK_TIMEOUT, min_iou=MIN_IOU):
        self.tracks = []  # dicts: id, box, vel, missed
        self.next_id = 1
        self.timeout = timeout
        self.min_iou = min_iou

    @staticmethod
    def _predicted(t):
        n = t["missed"] + 1
        dx, dy = t["vel"][0] * n, t["vel"][1] * n
        b = t["box"]
        return (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)

    @staticmethod
    def _update(t, b):
        gap = t["missed"] + 1
        ox, oy = (t["box"][0] + t["box"][2]) / 2, (t["box"][1] + t["box"][3]) / 2
        nx, ny = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        seen = ((nx - ox) / gap, (ny - oy) / gap)
        t["vel"] = (t["vel"][0] + VELOCITY_GAIN * (seen[0] - t["vel"][0]),
                    t["vel"][1] + VELOCITY_GAIN * (seen[1] - t["vel"][1]))
        t["box"] = b
        t["missed"] = 0

    def update(self, boxes):
        predicted = [self._predicted(t) for t in self.tracks]
        pairs = []
        for ti, p in enumerate(predicted):
            for di, b in enumerate(boxes):
                v = iou(p, b)
                if v >= self.min_iou:
                    pairs.append((-v, ti, di))
        pairs.sort()
        ids = [None] * len(boxes)
        matched = [False] * len(self.tracks)
        for _, ti, di in pairs:
            if matched[ti] or ids[di] is not None:
                continue
            matched[ti] = True
            self._update(self.tracks[ti], boxes[di])
            ids[di] = self.tracks[ti]["id"]
        for ti, m in enumerate(matched):
            if not m:
                self.tracks[ti]["missed"] += 1
        self.tracks = [t for t in self.tracks if t["missed"] <= self.timeout]
        for di, b in enumerate(boxes):
            if ids[di] is not None or len(self.tracks) >= 256:
                continue
            tid = self.next_id
            self.next_id += 1
            self.tracks.append({"id": tid, "box": b, "vel": (0.0, 0.0), "missed": 0})
            ids[di] = tid
        return ids


def crop_target(b, fw, fh, aspect=1.0, margin=ROI_MARGIN):
    """src/clip.rs crop_target: clamp, widen by the margin, grow to the aspect ratio."""
    x0, y0 = min(max(b[0], 0.0), fw), min(max(b[1], 0.0), fh)
    x1, y1 = min(max(b[2], 0.0), fw), min(max(b[3], 0.0), fh)
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    x0, y0, x1, y1 = x0 - dx, y0 - dy, x1 + dx, y1 + dy
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def fit_frame(b, fw, fh):
    """src/clip.rs fit_frame + Bounds::to_pixels: (x, y, w, h) integer pixels, or None."""
    w, h = b[2] - b[0], b[3] - b[1]
    if not (w > 0 and h > 0):
        return None
    if w > fw:
        h *= fw / w
        w = fw
    if h > fh:
        w *= fh / h
        h = fh
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    x0 = min(max(cx - w / 2, 0.0), fw - w)
    y0 = min(max(cy - h / 2, 0.0), fh - h)
    px0, py0 = min(max(math.floor(x0), 0), fw), min(max(math.floor(y0), 0), fh)
    px1, py1 = min(max(math.ceil(x0 + w), 0), fw), min(max(math.ceil(y0 + h), 0), fh)
    if px1 <= px0 or py1 <= py0:
        return None
    return (int(px0), int(py0), int(px1 - px0), int(py1 - py0))


def smooth(s, t):
    return tuple(o + CROP_SMOOTHING * (n - o) for o, n in zip(s, t))


def element_clips(dets, n_frames, fw, fh):
    """The clips iguardverify makes (clip-per=object, tracking=builtin, defaults).

    Returns (clips, tracks): clips are dicts with `track`, `start` (1-based frame of the
    trigger), `crops` (one (frame, x, y, w, h) per real tile), `real`, `status` (`finished`,
    `lost-completed`, `lost-dropped`, `overflow`); tracks maps id -> [(frame, box, conf)].
    """
    tracker = Tracker()
    clips, collecting, quiet, refused = [], [], {}, set()
    tracks = {}
    for frame in range(1, n_frames + 1):
        boxes = [d for d in dets.get(frame, [])]
        ids = tracker.update([b[:4] for b in boxes])
        cands = sorted(
            [(b[4], i, tid, b[:4]) for i, (b, tid) in enumerate(zip(boxes, ids)) if tid is not None],
            key=lambda c: (-c[0], c[1]))
        seen, uniq = set(), []
        for c in cands:
            if c[2] not in seen:
                seen.add(c[2])
                uniq.append(c)
        cands = uniq
        for conf, _, tid, b in cands:
            tracks.setdefault(tid, []).append((frame, b, conf))
        quiet = {k: u for k, u in quiet.items() if u >= frame}
        refused = {k for k in refused if any(c[2] == k for c in cands)}
        by_id = {c[2]: c for c in cands}
        for c in collecting:
            c["since"] += 1
            if c["track"] in by_id:
                c["missing"] = 0
                c["smoothed"] = smooth(c["smoothed"], crop_target(by_id[c["track"]][3], fw, fh))
            else:
                c["missing"] += 1
        kept = []
        for c in collecting:
            if c["missing"] >= TRACK_TIMEOUT:
                quiet[c["track"]] = frame + COOLDOWN
                refused = set()
                # src/clip.rs trim_to_last_seen: only the tiles up to the last one that saw it.
                keep = c["seen"]
                c["crops"] = c["crops"][:keep]
                c["real"] = keep
                c["status"] = "lost-completed" if c["real"] >= MIN_FRAMES else "lost-dropped"
                c["end"] = frame
                clips.append(c)
            else:
                kept.append(c)
        collecting = kept
        for conf, _, tid, b in cands:
            if conf < 0.5 or any(c["track"] == tid for c in collecting) or tid in quiet or tid in refused:
                continue
            target = crop_target(b, fw, fh)
            if fit_frame(target, fw, fh) is None:
                continue
            if len(collecting) >= MAX_CLIPS:
                refused.add(tid)
                clips.append({"track": tid, "start": frame, "crops": [], "real": 0,
                              "status": "overflow", "end": frame})
                continue
            collecting.append({"track": tid, "start": frame, "crops": [], "real": 0, "since": 0,
                               "missing": 0, "smoothed": target})
        kept = []
        for c in collecting:
            crop = fit_frame(c["smoothed"], fw, fh)
            c["crops"].append((frame,) + crop)
            c["real"] += 1
            if c["track"] in by_id:
                c["seen"] = c["real"]  # tiles up to the last one with the object's own box
            if c["real"] >= TEMPORAL:
                quiet[c["track"]] = frame + COOLDOWN
                refused = set()
                c["status"] = "finished"
                c["end"] = frame
                clips.append(c)
            else:
                kept.append(c)
        collecting = kept
    for c in collecting:  # EOS: completed by repeating the last tile
        c["status"] = "eos-completed"
        c["end"] = n_frames
        clips.append(c)
    for c in clips:
        c.pop("smoothed", None)
        c.pop("since", None)
        c.pop("missing", None)
        c.pop("seen", None)
    clips.sort(key=lambda c: (c["start"], c["track"]))
    return clips, tracks


def window_crops(track, start_index, fw, fh, length=TEMPORAL):
    """Crops of a training window along a track, as a clip triggered at its `start_index`-th
    detection would take them (the crop follows the box, smoothed; frames where the track was
    not detected keep the last crop). Returns [(frame, x, y, w, h)] or None if it runs off."""
    f0, b0, _ = track[start_index]
    by_frame = {f: b for f, b, _ in track}
    s = crop_target(b0, fw, fh)
    out = []
    for k in range(length):
        f = f0 + k
        if k > 0 and f in by_frame:
            s = smooth(s, crop_target(by_frame[f], fw, fh))
        if k > 0 and f > track[-1][0]:
            return None
        out.append((f,) + fit_frame(s, fw, fh))
    return out
