# SPDX-License-Identifier: MIT OR Apache-2.0
"""The backbone's 512-d pooled features of clips (or any graph's one output per clip, such as the
pose cue's presence logits), computed once and cached on disk.

    python models/backbone/features.py --model .cache/backbone/onnx/mc3_18-features.onnx \
        --data .cache/verifier/dataset.npz [--threads 2]

mc3_18 costs about 0.9 s a clip on one thread here, so each clip's features are stored in a
cache file next to the model (`<model>.features.npz`), keyed by the sha256 of the clip's uint8
pixels: a clip seen before (in any dataset) is never computed again. The cache belongs to one
model file: its sha256 is stored with it and a mismatch starts a new cache.
"""

import argparse
import hashlib
import os
import sys
import time

import numpy as np

BATCH = 4


def clip_key(clip):
    return hashlib.sha256(np.ascontiguousarray(clip).tobytes()).hexdigest()


def file_sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cache_path(model):
    return model + ".features.npz"


def load_cache(model):
    p = cache_path(model)
    sha = file_sha(model)
    if os.path.exists(p):
        c = np.load(p)
        if str(c["model_sha256"]) == sha:
            return sha, dict(zip(c["keys"].tolist(), c["features"]))
        print(f"{p}: made from another model, starting again", file=sys.stderr)
    return sha, {}


def save_cache(model, sha, cache):
    keys = sorted(cache)
    tmp = cache_path(model) + ".part.npz"
    np.savez(tmp, model_sha256=np.array(sha), keys=np.array(keys),
             features=np.stack([cache[k] for k in keys]).astype(np.float32) if keys
             else np.zeros((0, 0), np.float32))
    os.replace(tmp, cache_path(model))


def session(model, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # No busy-waiting between ops: on a machine shared with other jobs it only burns time.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def run_once(model, x, output, threads=1):
    """One run of a graph on input_rgb x: (the session, its `output`), for the tests and checks."""
    sess = session(model, threads)
    return sess, sess.run([output], {"input_rgb": x})[0]


def to_input(clips):
    """[N, T, H, W, 3] uint8 RGB (the element's tiles) -> input_rgb, as the element feeds it."""
    x = (clips.astype(np.float32) - np.float32(127.5)) * np.float32(1.0 / 127.5)
    return np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))


def features_of(model, clips, threads=2, save_every=8, verbose=True):
    """[N, D] float32 outputs (the graph's one output: D = 512 for the backbone's features) of uint8
    clips [N, 16, 112, 112, 3], from the cache where it can."""
    sha, cache = load_cache(model)
    keys = [clip_key(c) for c in clips]
    todo = [i for i, k in enumerate(keys) if k not in cache]
    todo = list(dict.fromkeys(todo))
    if todo:
        sess = session(model, threads)
        t0 = time.monotonic()
        done = 0
        for s in range(0, len(todo), BATCH):
            idx = todo[s:s + BATCH]
            out = sess.run(None, {"input_rgb": to_input(clips[idx])})[0]
            for i, f in zip(idx, out):
                cache[keys[i]] = f.astype(np.float32)
            done += len(idx)
            if done % save_every < BATCH or done == len(todo):
                save_cache(model, sha, cache)
                if verbose:
                    el = time.monotonic() - t0
                    print(f"features: {done}/{len(todo)} new clips, {el / done:.2f} s a clip",
                          file=sys.stderr, flush=True)
    if keys:
        return np.stack([cache[k] for k in keys])
    import onnx

    dims = onnx.load(model, load_external_data=False).graph.output[0].type.tensor_type.shape.dim
    return np.zeros((0, dims[-1].dim_value), np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, nargs="+", help="dataset .npz files (their *_x arrays)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    for path in a.data:
        d = np.load(path)
        for k in sorted(d.files):
            if k == "x" or k.endswith("_x"):
                f = features_of(a.model, d[k], a.threads)
                print(f"{path} {k}: {f.shape[0]} clips' features")


if __name__ == "__main__":
    main()
