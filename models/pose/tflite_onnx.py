#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Converts a TFLite flatbuffer into ONNX nodes, for MediaPipe's BlazePose landmark model
`pose_landmark_full.tflite` (mediapipe 0.10.21). numpy, onnx and flatbuffers only; the TFLite
schema is the generated module `schema_py_generated.py` that ships in the `ai-edge-litert` wheel,
imported from a path given at run time (never copied here).

    python models/pose/tflite_onnx.py --schema .../ai_edge_litert/schema_py_generated.py \
        --tflite pose_landmark_full.tflite --out pose.onnx [--outputs Identity,Identity_1] \
        [--input-layout NCHW|NHWC] [--output-layout NHWC|NCHW]

The network is rewritten in NCHW as a whole (weights transposed once), so ONNX convolutions need
no Transpose around them. Only where the original's element order matters, a RESHAPE that
flattens an NHWC tensor, is the tensor turned back to NHWC first (skipped where C or H * W is 1:
the order is then the same). The batch is dynamic: RESHAPE's leading 1 is copied from the input
(0), PAD, RESIZE_BILINEAR (scales) and the rest carry it through.

Supported operators: ADD, CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE (of float16 constants, folded into
float32 initializers), LOGISTIC, MAX_POOL_2D, PAD, RESHAPE, RESIZE_BILINEAR, with fused
activations NONE, RELU, RELU_N1_TO_1, RELU6, TANH. Anything else is refused by name. Only the
operators that the requested outputs need are converted.
"""

import argparse
import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
LAYOUTS = ("NCHW", "NHWC")
# TFLite's 4-D activations are NHWC; inside the graph they are NCHW.
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


class ConversionError(ValueError):
    pass


def load_schema(path):
    """Imports the generated TFLite schema module from a file path."""
    if not os.path.isfile(path):
        raise ConversionError(f"TFLite schema module {path!r} does not exist (it is "
                              "ai_edge_litert/schema_py_generated.py in the ai-edge-litert wheel)")
    spec = importlib.util.spec_from_file_location("tflite_schema_py_generated", path)
    if spec is None or spec.loader is None:
        raise ConversionError(f"cannot import the TFLite schema from {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "ModelT"):
        raise ConversionError(f"{path!r} has no ModelT: not a generated TFLite schema module")
    return module


@dataclass
class Converted:
    """ONNX pieces for embedding in a larger graph (all names carry the prefix)."""

    nodes: list
    initializers: list
    input_name: str
    input_shape: list  # with "N" for the dynamic batch
    outputs: dict  # TFLite output name -> ONNX value name
    output_shapes: dict  # TFLite output name -> shape with "N"
    # For checking operator by operator: TFLite tensor index -> (ONNX value, "NCHW" or "plain"),
    # and (TFLite operator index, first node, end node) of the nodes each operator became.
    tensors: dict
    spans: list


def _enum_names(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _same_pads(size, kernel, stride, dilation):
    """TFLite SAME: output ceil(size / stride), the odd pixel of padding at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Builder:
    def __init__(self, data, schema, prefix):
        self.s = schema
        self.data = data
        self.prefix = prefix
        self.model = schema.ModelT.InitFromPackedBuf(data, 0)
        if len(self.model.subgraphs) != 1:
            raise ConversionError(
                f"the model has {len(self.model.subgraphs)} subgraphs; only 1 is supported")
        self.g = self.model.subgraphs[0]
        self.op_names = _enum_names(schema.BuiltinOperator)
        self.act_names = _enum_names(schema.ActivationFunctionType)
        self.type_names = _enum_names(schema.TensorType)
        self.nodes, self.inits = [], []
        self.values = {}  # tensor index -> (onnx name, layout): "NCHW" for 4-D, else "plain"
        self.consts = {}  # tensor index -> numpy array (constants, dequantized ones folded)
        self.counter = 0
        self.spans = []
        self.small = {}  # (what, dtype, shape, bytes) -> initializer name

    # -- names and helpers --------------------------------------------------------------------

    def tname(self, i):
        name = self.g.tensors[i].name
        return name.decode() if isinstance(name, bytes) else name

    def shape(self, i):
        shape = self.g.tensors[i].shape
        return [] if shape is None else [int(d) for d in shape]

    def fresh(self, what):
        self.counter += 1
        return f"{self.prefix}{what}_{self.counter}"

    def init(self, what, array):
        array = np.ascontiguousarray(array)
        # Small constants (clip bounds, pads, shapes) are shared rather than repeated.
        key = (what, array.dtype.str, array.shape, array.tobytes()) if array.size <= 16 else None
        if key in self.small:
            return self.small[key]
        name = self.fresh(what)
        self.inits.append(numpy_helper.from_array(array, name))
        if key is not None:
            self.small[key] = name
        return name

    def node(self, op, inputs, what, **attrs):
        out = self.fresh(what)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def opcode(self, op):
        code = self.model.operatorCodes[op.opcodeIndex]
        # Codes above 127 live in builtinCode only; older files fill deprecatedBuiltinCode.
        value = max(code.builtinCode, code.deprecatedBuiltinCode)
        return self.op_names.get(value, f"operator code {value}")

    # -- constants ----------------------------------------------------------------------------

    def buffer_array(self, i):
        t = self.g.tensors[i]
        buf = self.model.buffers[t.buffer]
        raw = None
        if buf.data is not None and len(buf.data):
            raw = bytes(np.asarray(buf.data, np.uint8))
        elif getattr(buf, "offset", 0) > 1:
            raw = self.data[buf.offset:buf.offset + buf.size]
        if raw is None:
            return None
        dtypes = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32,
                  "INT64": np.int64}
        tname = self.type_names.get(t.type, str(t.type))
        if tname not in dtypes:
            raise ConversionError(f"constant {self.tname(i)!r} has type {tname}; "
                                  f"supported: {', '.join(dtypes)}")
        return np.frombuffer(raw, dtypes[tname]).reshape(self.shape(i))

    def const(self, i):
        if i in self.consts:
            return self.consts[i]
        array = self.buffer_array(i)
        if array is not None:
            self.consts[i] = array
        return array

    def need_const(self, i, what):
        array = self.const(i)
        if array is None:
            raise ConversionError(f"{what} {self.tname(i)!r} must be a constant")
        return array

    def value(self, i):
        if i not in self.values:
            raise ConversionError(f"tensor {self.tname(i)!r} is neither an input, a constant "
                                  "nor the output of a converted operator")
        return self.values[i]

    def as_nhwc_order(self, i):
        """The value of tensor i with TFLite's element order (for RESHAPE)."""
        name, layout = self.value(i)
        if layout != "NCHW":
            return name
        _, h, w, c = self.shape(i)
        if c == 1 or h * w == 1:
            return name  # the same flat order either way
        return self.node("Transpose", [name], "to_nhwc", perm=TO_NHWC)

    # -- activations --------------------------------------------------------------------------

    def activation(self, name, code, where):
        act = self.act_names.get(code, str(code))
        if act == "NONE":
            return name
        if act == "RELU":
            return self.node("Relu", [name], "relu")
        if act in ("RELU6", "RELU_N1_TO_1"):
            lo, hi = (0.0, 6.0) if act == "RELU6" else (-1.0, 1.0)
            return self.node("Clip", [name, self.init("lo", np.array(lo, np.float32)),
                                      self.init("hi", np.array(hi, np.float32))], "clip")
        if act == "TANH":
            return self.node("Tanh", [name], "tanh")
        raise ConversionError(f"{where}: fused activation {act} is not supported")

    # -- operators ----------------------------------------------------------------------------

    def conv_pads(self, opts, x_shape, kh, kw, where):
        pad = _enum_names(self.s.Padding).get(opts.padding, str(opts.padding))
        dh = getattr(opts, "dilationHFactor", 1)
        dw = getattr(opts, "dilationWFactor", 1)
        if pad == "VALID":
            return [0, 0, 0, 0]
        if pad != "SAME":
            raise ConversionError(f"{where}: padding {pad} is not supported")
        _, h, w, _ = x_shape
        top, bottom = _same_pads(h, kh, opts.strideH, dh)
        left, right = _same_pads(w, kw, opts.strideW, dw)
        return [top, left, bottom, right]

    def op_conv(self, op, where, depthwise):
        o = op.builtinOptions
        x, _ = self.value(op.inputs[0])
        x_shape = self.shape(op.inputs[0])
        weight = self.need_const(op.inputs[1], "weight").astype(np.float32)
        if depthwise:
            # [1, kh, kw, C * M] -> [C * M, 1, kh, kw], one group per input channel.
            _, kh, kw, cm = weight.shape
            groups = x_shape[3]
            if cm != groups * o.depthMultiplier:
                raise ConversionError(f"{where}: {cm} output channels are not {groups} inputs "
                                      f"x depth multiplier {o.depthMultiplier}")
            w = weight.transpose(3, 0, 1, 2)
        else:
            _, kh, kw, cin = weight.shape
            if cin != x_shape[3]:
                raise ConversionError(f"{where}: weight has {cin} input channels, the input "
                                      f"{x_shape[3]} (grouped convolution is not supported)")
            groups = 1
            w = weight.transpose(0, 3, 1, 2)
        inputs = [x, self.init("w", w)]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.init("b", self.need_const(op.inputs[2], "bias").astype(np.float32)))
        y = self.node("Conv", inputs, "conv", kernel_shape=[kh, kw],
                      strides=[o.strideH, o.strideW],
                      dilations=[o.dilationHFactor, o.dilationWFactor],
                      pads=self.conv_pads(o, x_shape, kh, kw, where), group=groups)
        return self.activation(y, o.fusedActivationFunction, where), "NCHW"

    def op_max_pool(self, op, where):
        o = op.builtinOptions
        x, _ = self.value(op.inputs[0])
        kh, kw = o.filterHeight, o.filterWidth
        opts_pads = self.conv_pads(o, self.shape(op.inputs[0]), kh, kw, where)
        # ONNX MaxPool, like TFLite's, never picks a padded position.
        y = self.node("MaxPool", [x], "maxpool", kernel_shape=[kh, kw],
                      strides=[o.strideH, o.strideW], pads=opts_pads)
        return self.activation(y, o.fusedActivationFunction, where), "NCHW"

    def operand(self, i, rank4_layout):
        """A value or a constant for a broadcasting binary op in the given layout."""
        array = self.const(i)
        if array is None:
            name, layout = self.value(i)
            if layout != rank4_layout:
                raise ConversionError(f"operand {self.tname(i)!r} mixes layouts")
            return name
        array = array.astype(np.float32)
        if rank4_layout == "NCHW":
            if array.ndim == 4:
                array = array.transpose(TO_NCHW)
            elif array.ndim >= 1 and array.size > 1:
                # Broadcasting over the last axis (channels) becomes [C, 1, 1].
                if array.ndim != 1:
                    raise ConversionError(f"constant {self.tname(i)!r} of shape "
                                          f"{list(array.shape)} cannot be broadcast in NCHW")
                array = array.reshape(-1, 1, 1)
        return self.init("c", array)

    def op_add(self, op, where):
        layouts = [self.values[i][1] for i in op.inputs if i in self.values]
        if not layouts:
            raise ConversionError(f"{where}: both operands are constants")
        layout = "NCHW" if "NCHW" in layouts else "plain"
        a, b = (self.operand(i, layout) for i in op.inputs)
        y = self.node("Add", [a, b], "add")
        return self.activation(y, op.builtinOptions.fusedActivationFunction, where), layout

    def op_pad(self, op, where):
        x, layout = self.value(op.inputs[0])
        pads = self.need_const(op.inputs[1], "paddings").astype(np.int64)
        if layout == "NCHW":
            pads = pads[TO_NCHW]
        onnx_pads = np.concatenate([pads[:, 0], pads[:, 1]])
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            raise ConversionError(f"{where}: PAD with a constant value input (PADV2) is not "
                                  "supported")
        return self.node("Pad", [x, self.init("pads", onnx_pads)], "pad", mode="constant"), layout

    def op_resize(self, op, where):
        o = op.builtinOptions
        x, layout = self.value(op.inputs[0])
        if layout != "NCHW":
            raise ConversionError(f"{where}: RESIZE_BILINEAR needs a 4-D input")
        _, h, w, _ = self.shape(op.inputs[0])
        out_h, out_w = (int(v) for v in self.need_const(op.inputs[1], "size"))
        if o.alignCorners and o.halfPixelCenters:
            raise ConversionError(f"{where}: align_corners and half_pixel_centers together")
        mode = ("align_corners" if o.alignCorners
                else "half_pixel" if o.halfPixelCenters else "asymmetric")
        attrs = dict(mode="linear", coordinate_transformation_mode=mode)
        if out_h % h == 0 and out_w % w == 0:
            # Whole factors are exact as scales and keep the batch free.
            scales = np.array([1, 1, out_h // h, out_w // w], np.float32)
            y = self.node("Resize", [x, "", self.init("scales", scales)], "resize", **attrs)
        else:
            # Otherwise the output size exactly: [N, C] of the input, then (out_h, out_w).
            shape = self.node("Shape", [x], "shape", start=0, end=2)
            sizes = self.node("Concat", [shape, self.init("hw", np.array([out_h, out_w],
                                                                         np.int64))],
                              "sizes", axis=0)
            y = self.node("Resize", [x, "", "", sizes], "resize", **attrs)
        return y, "NCHW"

    def op_reshape(self, op, where):
        in_shape = self.shape(op.inputs[0])
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            target = [int(d) for d in self.need_const(op.inputs[1], "shape")]
        else:
            target = [int(d) for d in op.builtinOptions.newShape]
        per_sample = int(np.prod(in_shape[1:])) if in_shape else 0
        # A leading -1 keeps the batch too when the rest is one sample exactly.
        keeps_batch = target and (target[0] == 1 or (
            target[0] == -1 and -1 not in target[1:]
            and int(np.prod(target[1:])) == per_sample))
        if not in_shape or in_shape[0] != 1 or not keeps_batch:
            raise ConversionError(f"{where}: RESHAPE {in_shape} -> {target} does not keep the "
                                  "batch as its leading axis; the batch could not stay dynamic")
        x = self.as_nhwc_order(op.inputs[0])
        onnx_target = np.array([0] + target[1:], np.int64)  # 0: copy the batch
        if len(target) != 4:
            return self.node("Reshape", [x, self.init("shape", onnx_target)], "reshape"), "plain"
        _, h, w, c = target
        if c == 1 or h * w == 1:
            nchw = np.array([0, c, h, w], np.int64)
            return self.node("Reshape", [x, self.init("shape", nchw)], "reshape"), "NCHW"
        y = self.node("Reshape", [x, self.init("shape", onnx_target)], "reshape")
        return self.node("Transpose", [y], "to_nchw", perm=TO_NCHW), "NCHW"

    def op_logistic(self, op, where):
        x, layout = self.value(op.inputs[0])
        return self.node("Sigmoid", [x], "sigmoid"), layout

    def op_dequantize(self, op, where):
        src = self.const(op.inputs[0])
        t = self.g.tensors[op.inputs[0]]
        if src is None or src.dtype != np.float16:
            kind = self.type_names.get(t.type, str(t.type))
            raise ConversionError(f"{where}: only DEQUANTIZE of float16 constants is supported, "
                                  f"not of a {'constant' if src is not None else 'tensor'} of "
                                  f"type {kind} ({self.tname(op.inputs[0])!r})")
        self.consts[op.outputs[0]] = src.astype(np.float32)
        return None

    # -- the graph ----------------------------------------------------------------------------

    def needed_ops(self, out_indices):
        producer = {}
        for k, op in enumerate(self.g.operators):
            for o in op.outputs:
                producer[o] = k
        keep, todo = set(), list(out_indices)
        while todo:
            t = todo.pop()
            k = producer.get(t)
            if k is None or k in keep:
                continue
            keep.add(k)
            todo.extend(i for i in self.g.operators[k].inputs if i >= 0)
        return sorted(keep)

    def convert(self, outputs, input_layout, output_layout):
        by_name = {self.tname(i): i for i in self.g.outputs}
        names = list(by_name) if outputs is None else list(outputs)
        for n in names:
            if n not in by_name:
                raise ConversionError(f"output {n!r} is not in the model; it has "
                                      f"{', '.join(by_name)}")
        if len(self.g.inputs) != 1:
            raise ConversionError(f"the model has {len(self.g.inputs)} inputs; only 1 is "
                                  "supported")
        inp = self.g.inputs[0]
        in_shape = self.shape(inp)
        if len(in_shape) != 4 or in_shape[0] != 1:
            raise ConversionError(f"input {self.tname(inp)!r} has shape {in_shape}; expected "
                                  "[1, H, W, C]")
        input_name = self.prefix + self.tname(inp)
        _, h, w, c = in_shape
        if input_layout == "NCHW":
            self.values[inp] = (input_name, "NCHW")
            input_shape = ["N", c, h, w]
        else:
            x = self.node("Transpose", [input_name], "to_nchw", perm=TO_NCHW)
            self.values[inp] = (x, "NCHW")
            input_shape = ["N", h, w, c]

        handlers = {
            "ADD": self.op_add,
            "CONV_2D": lambda op, where: self.op_conv(op, where, False),
            "DEPTHWISE_CONV_2D": lambda op, where: self.op_conv(op, where, True),
            "DEQUANTIZE": self.op_dequantize,
            "LOGISTIC": self.op_logistic,
            "MAX_POOL_2D": self.op_max_pool,
            "PAD": self.op_pad,
            "RESHAPE": self.op_reshape,
            "RESIZE_BILINEAR": self.op_resize,
        }
        for k in self.needed_ops([by_name[n] for n in names]):
            op = self.g.operators[k]
            opname = self.opcode(op)
            where = f"operator {k} ({opname} -> {self.tname(op.outputs[0])!r})"
            if opname not in handlers:
                raise ConversionError(f"{where}: TFLite operator {opname} is not supported; "
                                      f"supported: {', '.join(sorted(handlers))}")
            if len(op.outputs) != 1:
                raise ConversionError(f"{where}: {len(op.outputs)} outputs; expected 1")
            out_type = self.type_names.get(self.g.tensors[op.outputs[0]].type, "?")
            if out_type != "FLOAT32":
                raise ConversionError(f"{where}: output of type {out_type}; only float32 "
                                      "models are supported")
            first = len(self.nodes)
            result = handlers[opname](op, where)
            self.spans.append((k, first, len(self.nodes)))
            if result is not None:
                self.values[op.outputs[0]] = result

        out_names, out_shapes = {}, {}
        for n in names:
            i = by_name[n]
            value, layout = self.value(i)
            shape = ["N"] + self.shape(i)[1:]
            if layout == "NCHW":
                if output_layout == "NHWC":
                    value = self.node("Transpose", [value], "to_nhwc", perm=TO_NHWC)
                else:
                    shape = [shape[k] for k in TO_NCHW]
            final = self.prefix + n
            self.nodes.append(helper.make_node("Identity", [value], [final], name=final))
            out_names[n], out_shapes[n] = final, shape
        return Converted(self.nodes, self.inits, input_name, input_shape, out_names, out_shapes,
                         dict(self.values), self.spans)


def convert(tflite_bytes, schema, outputs=None, input_layout="NCHW", output_layout="NHWC",
            prefix="pose/"):
    """Converts the TFLite model to ONNX nodes and initializers (opset 17).

    schema: the generated TFLite schema module (see load_schema). outputs: TFLite output names
    to keep (None: all); only the operators they need are converted. input_layout: the ONNX
    input's layout, "NCHW" ([N, C, H, W]) or "NHWC" (TFLite's own, one Transpose inside).
    output_layout: the layout of 4-D outputs, "NHWC" (TFLite's) or "NCHW". Every name starts
    with prefix. The batch N is dynamic.
    """
    for what, value in (("input_layout", input_layout), ("output_layout", output_layout)):
        if value not in LAYOUTS:
            raise ConversionError(f"{what} {value!r} is not one of {', '.join(LAYOUTS)}")
    return _Builder(bytes(tflite_bytes), schema, prefix).convert(outputs, input_layout,
                                                                output_layout)


def to_model(conv, graph_name="pose"):
    """A standalone ONNX model (opset 17, IR version 8) of a conversion."""
    def info(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        conv.nodes, graph_name, [info(conv.input_name, conv.input_shape)],
        [info(conv.outputs[n], conv.output_shapes[n]) for n in conv.outputs],
        initializer=conv.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="iguardverify-tflite_onnx")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--schema", required=True,
                   help="path to ai_edge_litert/schema_py_generated.py")
    p.add_argument("--tflite", required=True, help="the .tflite model")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--outputs", help="comma-separated TFLite output names (default: all)")
    p.add_argument("--input-layout", choices=LAYOUTS, default="NCHW")
    p.add_argument("--output-layout", choices=LAYOUTS, default="NHWC",
                   help="layout of 4-D outputs (default: TFLite's NHWC)")
    p.add_argument("--prefix", default="", help="prefix of every name in the graph")
    a = p.parse_args(argv)
    outputs = None if not a.outputs else [s.strip() for s in a.outputs.split(",") if s.strip()]
    try:
        schema = load_schema(a.schema)
        with open(a.tflite, "rb") as f:
            data = f.read()
        conv = convert(data, schema, outputs, a.input_layout, a.output_layout, a.prefix)
    except (ConversionError, OSError) as e:
        sys.exit(f"tflite_onnx: {e}")
    blob = to_model(conv).SerializeToString()
    with open(a.out, "wb") as f:
        f.write(blob)
    print(f"{a.out}: {len(conv.nodes)} nodes, {len(conv.initializers)} initializers, "
          f"input {conv.input_name} {conv.input_shape}, outputs "
          + ", ".join(f"{n} {conv.output_shapes[n]}" for n in conv.outputs)
          + f", sha256 {hashlib.sha256(blob).hexdigest()}")


if __name__ == "__main__":
    main()
