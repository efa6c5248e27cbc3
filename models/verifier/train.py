# SPDX-License-Identifier: MIT OR Apache-2.0
"""Trains the verifier on the training part of the footage dataset and exports it to ONNX.

Development only (CI never retrains): needs JAX from PyPI in its own venv (`make
verifier-train-venv`), and the dataset from dataset.py. Seeded: the weight init, the batch
order and the flips all come from --seed.

    .cache/train-venv/bin/python models/verifier/train.py --data .cache/verifier/dataset.npz \
        --out models/verifier/verifier.onnx

It also writes, next to the model (--out's folder), labels.txt and the fixture the ONNX test uses: two held-out clips (the
first test clip of a person track and of a false-detection track), and reference.json with
JAX's own logits and scores for them.
"""

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import net  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "verifier.onnx"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    a = ap.parse_args()

    import jax
    import jax.numpy as jnp

    jax.config.update("jax_platforms", "cpu")
    d = np.load(a.data)
    xs, ys = d["train_x"], d["train_y"]
    n = len(ys)
    counts = np.bincount(ys, minlength=2)
    # Balanced classes: each class weighs as much as the other in the loss.
    cw = jnp.asarray((n / (2.0 * np.maximum(counts, 1))).astype(np.float32))
    print(f"{n} training clips: {counts[1]} person, {counts[0]} false-detection; "
          f"JAX {jax.__version__}, seed {a.seed}")

    params = {k: jnp.asarray(v) for k, v in net.init(a.seed).items()}

    def loss_fn(p, x, y):
        logits = net.forward_jax(p, x)
        logp = jax.nn.log_softmax(logits)
        nll = -jnp.take_along_axis(logp, y[:, None], axis=1)[:, 0]
        w = cw[y]
        return jnp.sum(w * nll) / jnp.sum(w)

    b1, b2, eps = 0.9, 0.999, 1e-8

    @jax.jit
    def step(p, m, v, t, x, y, lr):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        mh = jax.tree_util.tree_map(lambda m: m / (1 - b1 ** t), m)
        vh = jax.tree_util.tree_map(lambda v: v / (1 - b2 ** t), v)
        p = jax.tree_util.tree_map(lambda p, m, v: p - lr * m / (jnp.sqrt(v) + eps), p, mh, vh)
        return p, m, v, loss

    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    rng = np.random.default_rng(a.seed)
    t = 0
    steps = a.epochs * ((n + a.batch - 1) // a.batch)
    t0 = time.monotonic()
    for epoch in range(a.epochs):
        order = rng.permutation(n)
        losses = []
        for s in range(0, n, a.batch):
            idx = np.sort(order[s:s + a.batch])
            x = xs[idx]
            flip = rng.random(len(idx)) < 0.5  # left-right mirror: people walk both ways
            x = np.where(flip[:, None, None, None, None], x[:, :, :, ::-1, :], x)
            t += 1
            lr = a.lr * 0.5 * (1 + np.cos(np.pi * (t - 1) / steps))  # cosine decay
            params, m, v, loss = step(params, m, v, t, jnp.asarray(net.normalise(x)),
                                      jnp.asarray(ys[idx]), lr)
            losses.append(float(loss))
        print(f"epoch {epoch + 1}/{a.epochs}: loss {np.mean(losses):.4f} "
              f"({time.monotonic() - t0:.0f} s)", flush=True)

    weights = {k: np.asarray(v) for k, v in params.items()}
    fwd = jax.jit(net.forward_jax)

    def logits_of(clips):
        return np.concatenate([np.asarray(fwd(weights, jnp.asarray(net.normalise(clips[i:i + 16]))))
                               for i in range(0, len(clips), 16)])

    train_acc = float((logits_of(xs).argmax(1) == ys).mean())
    print(f"training accuracy {train_acc:.3f}")

    doc = ("iguardverify's Stage-2 verifier: a small 3D-CNN trained on OpenCV's vtest.avi "
           "(first 60 % of frames) to tell HOG person detections of walking people from false "
           "detections. Classes: 0 false-detection, 1 person. Input NCDHW RGB (x-127.5)/127.5.")
    meta = {"iguard.model": "verifier", "iguard.seed": a.seed, "iguard.epochs": a.epochs,
            "iguard.layout": "ncdhw", "iguard.preprocess": "rgb, (x - 127.5) / 127.5",
            "iguard.labels": ",".join(net.CLASSES)}
    model = net.to_onnx(weights, doc, meta)
    import onnx
    onnx.save(model, a.out)
    with open(os.path.join(os.path.dirname(a.out), "labels.txt"), "w") as f:
        f.write("".join(c + "\n" for c in net.CLASSES))

    # The fixture: one held-out clip of each class from the element's clips, the first that the
    # trained model gets right (the test checks ONNX Runtime against JAX on them, and that the
    # two stay apart at 0.7; the held-out figures themselves come from eval.py).
    kinds, tys = d["test_kind"], d["test_y"]
    pick = []
    for c in (1, 0):
        cand = np.flatnonzero((kinds == "clip") & (tys == c))
        lg = logits_of(d["test_x"][cand])
        e = np.exp(lg - lg.max(1, keepdims=True))
        p1 = e[:, 1] / e.sum(1)
        good = cand[(p1 >= 0.7) if c == 1 else (p1 < 0.7)]
        pick.append(int(good[0] if len(good) else cand[0]))
    fixture = d["test_x"][pick]
    out_dir = os.path.dirname(os.path.abspath(a.out))
    np.savez_compressed(os.path.join(out_dir, "fixture.npz"), clips=fixture)
    lg = logits_of(fixture)
    sm = np.exp(lg - lg.max(1, keepdims=True))
    sm /= sm.sum(1, keepdims=True)
    with open(a.out, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    ref = {"model_sha256": sha, "jax": jax.__version__,
           "clips": [{"test_index": i, "clip": int(d["test_clip"][i]), "track": int(d["test_track"][i]),
                      "label": net.CLASSES[int(tys[i])]} for i in pick],
           "logits": lg.tolist(), "scores": sm[:, 1].tolist()}
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes, sha256 {sha[:16]}), fixture.npz, "
          f"reference.json; fixture scores {np.round(sm[:, 1], 4).tolist()}")


if __name__ == "__main__":
    main()
