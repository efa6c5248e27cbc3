# SPDX-License-Identifier: MIT OR Apache-2.0
"""models/hog_detections.py (the same HOG people detector, the same file format) with another
hitThreshold, for the extra evaluation sets: a lower threshold on vtest.avi (what the detector
gets wrong when it is asked for more) and the default one on a scene never trained on.

    /usr/bin/python3 models/scenes/detect.py VIDEO --out FILE [--hit-threshold T]

hog_detections.py itself is left as it is (the footage's detections depend on it).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import hog_detections as H  # noqa: E402


def main():
    argv = sys.argv[1:]
    if "--hit-threshold" in argv:
        i = argv.index("--hit-threshold")
        try:
            H.HIT_THRESHOLD = float(argv[i + 1])
        except (IndexError, ValueError):
            sys.exit(f"--hit-threshold needs a number, got {argv[i + 1:i + 2]}")
        del argv[i:i + 2]
    sys.argv = [sys.argv[0]] + argv
    H.main()


if __name__ == "__main__":
    main()
