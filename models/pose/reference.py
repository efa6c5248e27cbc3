# SPDX-License-Identifier: MIT OR Apache-2.0
"""Development only: the pose cue of the committed held-out clips computed without ONNX, which
the graph of `build.py pose` must equal (test_pose.py, within 1e-4).

Needs ai_edge_litert (`make pose-reference` makes a venv of its own under .cache/; never needed
by `make demo` or `make test`):

    .cache/pose/litert-venv/bin/python models/pose/reference.py \
        --tflite .cache/pose/mediapipe/modules/pose_landmark/pose_landmark_full.tflite \
        --fixture models/verifier/fixture.npz --out models/pose/reference.json

For every clip, tiles 0, 4, 8 and 12 (build.py POSE_TILES): the uint8 RGB tile resized
112 -> 256 by a bilinear resize written here in float64 (half-pixel centres, edges clamped: what
ONNX Resize `linear`/`half_pixel` and TFLite's RESIZE_BILINEAR with half_pixel_centers do), then
/ 255, then the .tflite itself in ai_edge_litert's Interpreter (1 thread, default kernels), whose
Identity_1 is the pose-presence probability p. The logit is log(p / (1 - p)) with p clipped to
[1e-6, 1 - 1e-6], in float64.
"""

import argparse
import hashlib
import json

import numpy as np

TILES = (0, 4, 8, 12)  # build.py POSE_TILES
SIZE = 256  # build.py POSE_SIZE
CLIP = 1e-6  # build.py POSE_CLIP


def bilinear_axis(n_in, n_out):
    """Source indices (lo, hi) and the weight of hi for each output position along one axis,
    with half-pixel centres: source = (out + 0.5) * n_in / n_out - 0.5, clamped to [0, n_in - 1]."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, src - lo


def resize(img, size):
    """[H, W, C] -> [size, size, C], float64, bilinear with half-pixel centres."""
    img = np.asarray(img, np.float64)
    lo, hi, w = bilinear_axis(img.shape[0], size)
    rows = img[lo] * (1.0 - w)[:, None, None] + img[hi] * w[:, None, None]
    lo, hi, w = bilinear_axis(img.shape[1], size)
    return rows[:, lo] * (1.0 - w)[None, :, None] + rows[:, hi] * w[None, :, None]


def logit(p):
    p = np.clip(np.asarray(p, np.float64), CLIP, 1.0 - CLIP)
    return np.log(p / (1.0 - p))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tflite", required=True, help="pose_landmark_full.tflite (mediapipe 0.10.21)")
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import ai_edge_litert
    from ai_edge_litert.interpreter import Interpreter

    with open(a.tflite, "rb") as f:
        data = f.read()
    interp = Interpreter(model_content=data, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    if list(inp["shape"]) != [1, SIZE, SIZE, 3]:
        raise SystemExit(f"{a.tflite}: input shape {list(inp['shape'])}, expected [1, {SIZE}, {SIZE}, 3]")
    out = {d["name"]: d["index"] for d in interp.get_output_details()}
    if "Identity_1" not in out:
        raise SystemExit(f"{a.tflite}: no Identity_1 output (has {sorted(out)})")
    clips = np.load(a.fixture)["clips"]  # [N, T, H, W, 3] uint8 RGB
    probs = np.zeros((len(clips), len(TILES)))
    for i, clip in enumerate(clips):
        for j, t in enumerate(TILES):
            x = (resize(clip[t], SIZE) / 255.0).astype(np.float32)[None]
            interp.set_tensor(inp["index"], x)
            interp.invoke()
            probs[i, j] = float(interp.get_tensor(out["Identity_1"]).reshape(-1)[0])
    version = getattr(ai_edge_litert, "__version__", "unknown")
    ref = {"source": "models/pose/reference.py: uint8 tile -> bilinear resize 112 -> 256 (float64, "
                     "half-pixel centres, written in numpy) -> / 255 -> float32 -> ai_edge_litert "
                     "Interpreter on the .tflite (1 thread, default kernels), Identity_1 = p; "
                     "logit = log(p / (1 - p)), p clipped to [1e-6, 1 - 1e-6], float64",
           "ai_edge_litert": version,
           "tflite_sha256": sha256(data),
           "fixture_sha256": sha256(clips.tobytes()),
           "tiles": list(TILES),
           "clip": CLIP,
           "presence_p": probs.tolist(),  # float32 values, exact in float64
           "presence_logit": logit(probs).tolist()}
    with open(a.out, "w") as f:
        json.dump(ref, f)
        f.write("\n")
    print(f"wrote {a.out}: ai_edge_litert {version}, {len(clips)} clips x tiles {list(TILES)}; "
          f"p {np.round(probs, 6).tolist()}, logit {np.round(logit(probs), 3).tolist()}")


if __name__ == "__main__":
    main()
