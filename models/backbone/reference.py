# SPDX-License-Identifier: MIT OR Apache-2.0
"""Development only: the source framework's own outputs for the committed held-out clips, which
the ONNX graphs built by build.py must equal (test_backbone.py, within 1e-4).

Needs PyTorch and torchvision (CPU) in a venv of their own (`make backbone-reference-venv`,
under .cache/; never needed by `make demo` or `make test`):

    .cache/torch-venv/bin/python models/backbone/reference.py \
        --pth .cache/backbone/fight_detection/model_16_m3_0.8888.pth \
        --fixture models/verifier/fixture.npz --out models/backbone/reference.json

torchvision's `mc3_18(weights=None)` (no download) with the package's state dict, in eval mode;
each clip is fed as the package itself feeds it: RGB, (pixel / 255 - mean) / std, NCDHW. The
pooled features are read by replacing `fc` with an identity. The fast cut (build.py CUTS) is
fed the same way after PyTorch itself keeps its tiles (index_select on time) and halves their
size (avg_pool3d 1x2x2): `fast_features`.
"""

import argparse
import hashlib
import json

import numpy as np

# build.py's CUTS["fast"]: the tiles kept and the spatial pooling factor.
FAST_FRAMES, FAST_POOL = (0, 4, 8, 12), 2
MEAN = [0.43216, 0.394666, 0.37645]
STD = [0.22803, 0.22145, 0.216989]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pth", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import torch
    import torchvision

    torch.set_num_threads(1)
    model = torchvision.models.video.mc3_18(weights=None, num_classes=2)
    state = torch.load(a.pth, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    clips = np.load(a.fixture)["clips"]  # [N, T, H, W, 3] uint8 RGB
    x = clips.astype(np.float64) / 255.0
    x = (x - np.array(MEAN)) / np.array(STD)
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3)).astype(np.float32))
    with torch.no_grad():
        logits = model(x).numpy()
        fc = model.fc
        model.fc = torch.nn.Identity()
        feats = model(x).numpy()
        xf = torch.index_select(x, 2, torch.tensor(FAST_FRAMES))
        xf = torch.nn.functional.avg_pool3d(xf, (1, FAST_POOL, FAST_POOL))
        fast = model(xf).numpy()
        model.fc = fc
    with open(a.pth, "rb") as f:
        pth_sha = hashlib.sha256(f.read()).hexdigest()
    ref = {"source": "torchvision.models.video.mc3_18(weights=None, num_classes=2) + the package's "
                     "state dict, eval mode, float32, 1 thread",
           "torch": torch.__version__, "torchvision": torchvision.__version__,
           "pth_sha256": pth_sha,
           "fixture_sha256": hashlib.sha256(clips.tobytes()).hexdigest(),
           "fight_logits": logits.tolist(),
           "features": np.round(feats.astype(np.float64), 7).tolist(),
           "fast_cut": {"frames": list(FAST_FRAMES), "pool": FAST_POOL},
           "fast_features": np.round(fast.astype(np.float64), 7).tolist()}
    with open(a.out, "w") as f:
        json.dump(ref, f)
        f.write("\n")
    print(f"wrote {a.out}: torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{len(clips)} clips, fight logits {np.round(logits, 4).tolist()}")


if __name__ == "__main__":
    main()
