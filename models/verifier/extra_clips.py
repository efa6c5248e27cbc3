# SPDX-License-Identifier: MIT OR Apache-2.0
"""Unlabelled training-part clips for distillation: what the element would cut from vtest.avi
when its detector is asked for more (HOG at a lower hitThreshold), inside the training part only.

    /usr/bin/python3 models/verifier/extra_clips.py --video V --detections D_LOW --out X.npz

The element's clips (clips.py, clip-per=object, defaults) of the lower-threshold detections that
end by frame SPLIT (477, dataset.py's split), and windows along their tracks every WINDOW_STEP
detections, also ending by SPLIT. No label is read or made: distil.py gives each clip the
teacher's (backbone + head) p(person). The held-out part is never touched.
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", required=True)
    ap.add_argument("--detections", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    frames = D.read_frames(a.video)
    fh, fw = frames[0].shape[:2]
    clips, tracks = C.element_clips(C.read_detections(a.detections), len(frames), fw, fh)
    xs = [D.clip_pixels(frames, c["crops"]) for c in clips
          if c["status"] not in ("overflow", "lost-dropped") and c["end"] <= SPLIT]
    n_clips = len(xs)
    for _, t in sorted(tracks.items()):
        for k in range(0, len(t), WINDOW_STEP):
            crops = C.window_crops(t, k, fw, fh)
            if crops is not None and crops[-1][0] <= SPLIT:
                xs.append(D.clip_pixels(frames, crops))
    np.savez(a.out, x=np.stack(xs))
    print(f"{len(xs)} training-part clips ({n_clips} element clips, {len(xs) - n_clips} windows) -> {a.out}")


if __name__ == "__main__":
    main()
