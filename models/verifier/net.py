# SPDX-License-Identifier: MIT OR Apache-2.0
"""The verifier's network, written once as a list of layers, so that training (JAX) and the
ONNX export build the same graph from the same weights.

Input: `input_rgb` float32 [N, 3, 16, 112, 112] (NCDHW, RGB, (pixel - 127.5) / 127.5, the TAO
convention the element feeds by default). Output: `fc_pred` [N, 2] raw logits; class 0
`false-detection`, class 1 `person`.

  AveragePool (1,2,2)                          -> 3 x 16 x 56 x 56
  Conv 3->16, 3x3x3, stride (1,2,2), ReLU      -> 16 x 16 x 28 x 28
  Conv 16->32, 3x3x3, stride 2, ReLU           -> 32 x 8 x 14 x 14
  Conv 32->64, 3x3x3, stride 2, ReLU           -> 64 x 4 x 7 x 7
  GlobalAveragePool, Flatten, Gemm 64->2

About 49 M multiply-accumulates per clip and 70 k parameters (0.3 MB).
"""

import numpy as np

FRAMES, HEIGHT, WIDTH = 16, 112, 112
CLASSES = ["false-detection", "person"]
POOL = (1, 2, 2)
# (name, in, out, stride)
CONVS = [("conv1", 3, 16, (1, 2, 2)), ("conv2", 16, 32, (2, 2, 2)), ("conv3", 32, 64, (2, 2, 2))]
KERNEL = (3, 3, 3)
HIDDEN = 64
INPUT_NAME, OUTPUT_NAME = "input_rgb", "fc_pred"


def init(seed, convs=CONVS):
    """He-initialised weights, seeded, as float32 numpy arrays. `convs` is a list of (name, in,
    out, stride) like CONVS (the distilled verifier, distil.py, passes a wider one)."""
    rng = np.random.default_rng(seed)
    p = {}
    hidden = convs[-1][2]
    for name, cin, cout, _ in convs:
        fan_in = cin * int(np.prod(KERNEL))
        p[f"{name}.weight"] = (rng.standard_normal((cout, cin, *KERNEL)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        p[f"{name}.bias"] = np.zeros(cout, np.float32)
    p["fc.weight"] = (rng.standard_normal((len(CLASSES), hidden)) / np.sqrt(hidden)).astype(np.float32)
    p["fc.bias"] = np.zeros(len(CLASSES), np.float32)
    return p


def normalise(clips_uint8):
    """[N, T, H, W, 3] uint8 RGB tiles (the element's clip layout) -> the model's input."""
    x = (clips_uint8.astype(np.float32) - np.float32(127.5)) * np.float32(1.0 / 127.5)
    return np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))


def conv3d(x, wgt, stride):
    """ONNX Conv (3x3x3, pads 1, `stride`) as one matrix product over gathered patches: XLA's
    direct 3-D convolution on CPU (and its gradient) is many times slower here than its GEMM."""
    import jax.numpy as jnp
    from jax import lax

    n, c, t, h, w = x.shape
    kt, kh, kw = wgt.shape[2:]
    st, sh, sw = stride
    xp = jnp.pad(x, ((0, 0), (0, 0), (kt // 2,) * 2, (kh // 2,) * 2, (kw // 2,) * 2))
    to, ho, wo = (t + 2 * (kt // 2) - kt) // st + 1, (h + 2 * (kh // 2) - kh) // sh + 1, \
        (w + 2 * (kw // 2) - kw) // sw + 1
    taps = [xp[:, :, a:a + st * (to - 1) + 1:st, b:b + sh * (ho - 1) + 1:sh, d:d + sw * (wo - 1) + 1:sw]
            for a in range(kt) for b in range(kh) for d in range(kw)]
    patches = jnp.stack(taps, axis=2).reshape(n, c * kt * kh * kw, to, ho, wo)
    return jnp.einsum("nkthw,ok->nothw", patches, wgt.reshape(wgt.shape[0], -1),
                      precision=lax.Precision.HIGHEST)


def forward_jax(p, x, convs=CONVS):
    """Logits with JAX (x: normalised NCDHW)."""
    import jax.numpy as jnp
    from jax import lax

    n, c, t, h, w = x.shape
    x = x.reshape(n, c, t, h // 2, 2, w // 2, 2).mean(axis=(4, 6))
    for name, _, cout, stride in convs:
        x = conv3d(x, p[f"{name}.weight"], stride)
        x = jnp.maximum(x + p[f"{name}.bias"][None, :, None, None, None], 0.0)
    x = x.mean(axis=(2, 3, 4))
    return jnp.dot(x, p["fc.weight"].T, precision=lax.Precision.HIGHEST) + p["fc.bias"]


def to_onnx(p, doc, metadata, convs=CONVS):
    """The same network as an ONNX graph (opset 17, IR 8, dynamic batch)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in sorted(p.items())]
    nodes = [helper.make_node("AveragePool", [INPUT_NAME], ["pool"], name="pool",
                              kernel_shape=list(POOL), strides=list(POOL))]
    x = "pool"
    for name, _, _, stride in convs:
        nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [name], name=name,
                                      kernel_shape=list(KERNEL), strides=list(stride),
                                      pads=[k // 2 for k in KERNEL] * 2))
        nodes.append(helper.make_node("Relu", [name], [f"{name}.relu"], name=f"{name}.relu"))
        x = f"{name}.relu"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flat", axis=1))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], [OUTPUT_NAME],
                                  name="fc", transB=1))
    graph = helper.make_graph(
        nodes, "iguard-verifier",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, FRAMES, HEIGHT, WIDTH])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", len(CLASSES)])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="iguardverify models/verifier/train.py", doc_string=doc)
    model.ir_version = 8
    for k, v in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=str(v)))
    onnx.checker.check_model(model)
    return model
