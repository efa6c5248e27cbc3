# SPDX-License-Identifier: MIT OR Apache-2.0
"""Person detections for a video, from OpenCV's built-in HOG people detector.

Writes a MOTChallenge detection file (the layout `iguardreplay` reads):

    frame,id,left,top,width,height,conf,class

one line per detection, frames 1-based, id -1 (untracked: the element associates detections
across frames itself), class 1 (person).

The detector is the Daimler 48x96 one at the video's own size, with hitThreshold=1.0,
winStride=(8,8), scale=1.05 (about 50 ms a frame on one core). OpenCV returns, per box, the
SVM's decision value (a margin, >= hitThreshold for a box it keeps; about 1 to 4 on vtest.avi).
It is squashed into a confidence in 0..1 with the logistic function, conf = 1 / (1 + e^-w), so
a box at the threshold reads 0.73 and one twice as far from the SVM's plane 0.88. That keeps the
order of the SVM's values and gives every kept box a confidence above the element's default
min-confidence (0.5), as the detector kept it.

Run with Debian's python3-opencv (/usr/bin/python3); OpenCV 5 dropped HOGDescriptor.
"""

import argparse
import math
import sys
import time

import cv2

HIT_THRESHOLD = 1.0
WIN_STRIDE = (8, 8)
SCALE = 1.05
PERSON_CLASS = 1


def daimler_detector():
    # Daimler's window: 48x96, blocks of 16x16 moved by 8, cells of 8x8, 9 orientation bins.
    hog = cv2.HOGDescriptor((48, 96), (16, 16), (8, 8), (8, 8), 9)
    hog.setSVMDetector(cv2.HOGDescriptor_getDaimlerPeopleDetector())
    return hog


def confidence(weight):
    return 1.0 / (1.0 + math.exp(-float(weight)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("video")
    p.add_argument("--out", required=True)
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many (0 = all)")
    a = p.parse_args()

    cap = cv2.VideoCapture(a.video)
    if not cap.isOpened():
        sys.exit(f"cannot open {a.video!r}")
    hog = daimler_detector()
    frames = boxes = 0
    t0 = time.monotonic()
    with open(a.out, "w") as out:
        out.write(
            f"# OpenCV {cv2.__version__} HOG Daimler 48x96, hitThreshold={HIT_THRESHOLD}, "
            f"winStride={WIN_STRIDE}, scale={SCALE}; conf = 1/(1+exp(-svm weight))\n"
        )
        while True:
            ok, img = cap.read()
            if not ok:
                break
            frames += 1
            rects, weights = hog.detectMultiScale(
                img, hitThreshold=HIT_THRESHOLD, winStride=WIN_STRIDE, scale=SCALE
            )
            # OpenCV's HOG returns a frame's boxes in an order that depends on its threads
            # (it differs from run to run); the tracker numbers new tracks in detection order,
            # and the labels are kept by track id, so the file lists them sorted.
            found = sorted(
                (int(x), int(y), int(w), int(h), float(wt))
                for (x, y, w, h), wt in zip(rects, weights.reshape(-1) if len(rects) else [])
            )
            for x, y, w, h, wt in found:
                out.write(
                    f"{frames},-1,{x},{y},{w},{h},{confidence(wt):.4f},{PERSON_CLASS}\n"
                )
                boxes += 1
            if a.max_frames and frames >= a.max_frames:
                break
    dt = time.monotonic() - t0
    if frames == 0:
        sys.exit(f"no frames decoded from {a.video!r}")
    print(
        f"{frames} frames, {boxes} detections ({boxes / frames:.1f} a frame) "
        f"in {dt:.1f} s ({1000 * dt / frames:.0f} ms a frame)"
    )


if __name__ == "__main__":
    main()
