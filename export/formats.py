"""The table of deployable formats. Export, parity and benchmarks all iterate it.

Adding a format is one ``Format`` row plus one ``build_*`` function that
writes the file to the path it is given and returns notes for the manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("export")

ONNX_OPSET = 17  # tf2onnx works with 13..18 for this stack; 19+ does not


@dataclass
class Context:
    """Everything a build function may need, computed once per export run."""

    model: object  # keras.Model, batch-free
    calib: np.ndarray  # float32 (N, 28, 28, 1): the representative set, shared by TFLite and ONNX
    val_x: np.ndarray  # float32 held-out validation images (never the test set) for choices
    val_y: np.ndarray
    opset: int = ONNX_OPSET
    cache: dict = field(default_factory=dict)

    def fixed_model(self):
        """The same model with its batch dimension fixed to 1 (what a camera loop feeds)."""
        if "fixed" not in self.cache:
            import keras

            inp = keras.Input(batch_shape=(1, 28, 28, 1), name="image")
            self.cache["fixed"] = keras.Model(inp, self.model(inp, training=False), name="edge_batch1")
        return self.cache["fixed"]


@dataclass(frozen=True)
class Format:
    key: str
    file: str
    kind: str  # "tflite" | "onnx"
    precision: str  # "float32" | "int8" | "float16" | "dynamic"
    build: Callable[[Context, Path], dict]
    description: str


class ConversionError(RuntimeError):
    pass


# -- TFLite ------------------------------------------------------------------------------------
def space_to_depth_stem(model):
    """The same function with its first layer, a 5x5 stride-2 "same" conv on one channel, done as
    space-to-depth (2x2 blocks: 28x28x1 -> 14x14x4) and a 3x3 stride-1 "same" conv; None when
    the model does not start so, or is not a chain of single-input layers.

    Why: XNNPACK's int8 kernel for a conv on one input channel is slow on an AVX2 CPU (the edge
    model's stem: 45 us of a 170 us call, against 6 us in float and 21 us in TFLite's own int8
    kernel); on four channels it takes 18 us. The conv's weights are moved, not changed (a tap
    the 5x5 kernel does not have is 0), so per-channel int8 scales and every output are the same.
    With "same" padding a 5x5 stride-2 window over rows 2i-1..2i+3 is the 2x2 blocks i-1..i+1,
    minus the first block's first row.
    """
    import keras
    import tensorflow as tf

    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    if len(layers) == 1 and isinstance(layers[0], keras.Model):  # the batch-1 wrapper of fixed_model
        layers = [l for l in layers[0].layers if not isinstance(l, keras.layers.InputLayer)]
    if not layers or type(layers[0]) is not keras.layers.Conv2D:  # exactly Conv2D, not a subclass
        return None
    stem = layers[0]
    shape = tuple(model.input.shape)
    if (stem.kernel_size != (5, 5) or stem.strides != (2, 2) or stem.padding != "same" or stem.groups != 1
            or stem.dilation_rate != (1, 1) or len(shape) != 4 or shape[-1] != 1 or shape[1] % 2 or shape[2] % 2):
        return None
    for prev, layer in zip(layers, layers[1:]):  # a chain: each layer's one input is the previous one's output
        try:
            if layer.input is not prev.output:
                return None
        except (AttributeError, ValueError):
            return None
    w = stem.get_weights()
    kernel = w[0]  # (5, 5, 1, out)
    moved = np.zeros((3, 3, 4, kernel.shape[-1]), kernel.dtype)
    for by in range(3):
        for bx in range(3):
            for sy in range(2):
                for sx in range(2):
                    ty, tx = 2 * by + sy - 1, 2 * bx + sx - 1  # the 5x5 tap at block offset (by-1, bx-1)
                    if 0 <= ty < 5 and 0 <= tx < 5:
                        moved[by, bx, sy * 2 + sx] = kernel[ty, tx, 0]
    inp = keras.Input(batch_shape=shape, name="image")
    x = keras.layers.Lambda(lambda t: tf.nn.space_to_depth(t, 2), name="space_to_depth")(inp)
    conv = keras.layers.Conv2D(stem.filters, 3, padding="same", use_bias=stem.use_bias,
                               activation=stem.activation, name=f"{stem.name}_s2d")
    x = conv(x)
    conv.set_weights([moved] + w[1:])
    for layer in layers[1:]:
        x = layer(x, training=False)
    return keras.Model(inp, x, name=f"{model.name}_s2d")


def build_tflite_float32(ctx: Context, path: Path) -> dict:
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(ctx.fixed_model()).convert())
    return {}


def _representative(ctx: Context):
    def gen():
        for i in range(len(ctx.calib)):
            yield [ctx.calib[i : i + 1]]

    return gen


def build_tflite_int8(ctx: Context, path: Path) -> dict:
    import tensorflow as tf

    blocks = space_to_depth_stem(ctx.fixed_model())
    conv = tf.lite.TFLiteConverter.from_keras_model(blocks or ctx.fixed_model())
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(ctx)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    float_tensors = tflite_float_tensors(path)
    if float_tensors:
        raise ConversionError(f"float tensors left in the int8 graph: {', '.join(float_tensors[:5])}")
    notes = {"quantization": "full-integer post-training, per-channel int8 weights, int8 activations and I/O"}
    if blocks is not None:
        notes["stem"] = "5x5 stride-2 conv as space-to-depth + 3x3 conv (the same function; faster in XNNPACK int8)"
    return notes


def tflite_float_tensors(path: Path) -> list[str]:
    """Names of float tensors in a .tflite graph (an int8 model must have none)."""
    from edge.runtime import Model

    m = Model(path)
    return [d["name"] for d in m._interp.get_tensor_details() if np.dtype(d["dtype"]).kind == "f"]


# -- ONNX --------------------------------------------------------------------------------------
def _onnx_float_proto(ctx: Context):
    if "onnx" not in ctx.cache:
        import tensorflow as tf
        import tf2onnx

        fixed = ctx.fixed_model()
        # from_keras fails on Keras 3; from_function with a fixed signature works.
        fn = tf.function(lambda x: fixed(x, training=False))
        spec = [tf.TensorSpec((1, 28, 28, 1), tf.float32, name="image")]
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=ctx.opset)
        proto.graph.output[0].name = _rename_output(proto, "probs")
        ctx.cache["onnx"] = proto
    return ctx.cache["onnx"]


def _rename_output(proto, new: str) -> str:
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    return new


def build_onnx_float32(ctx: Context, path: Path) -> dict:
    import onnx

    onnx.save(_onnx_float_proto(ctx), str(path))
    return {"opset": ctx.opset}


class _Reader:
    """onnxruntime calibration reader over the shared representative set."""

    def __init__(self, calib: np.ndarray, name: str):
        self._it = iter([{name: calib[i : i + 1]} for i in range(len(calib))])

    def get_next(self):
        return next(self._it, None)


def _quantize_onnx(ctx: Context, src: Path, dst: Path, activation: str) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(src),
        str(dst),
        _Reader(ctx.calib, "image"),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8 if activation == "int8" else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


_LAYOUT_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Flatten")


def _integer_io(path: Path) -> dict:
    """Strip the graph's first QuantizeLinear and last DequantizeLinear so I/O is integer.

    The edge runtime then quantizes inputs and dequantizes outputs itself, with
    the same code and the same kind of scale/zero point as for TFLite; the
    values are recorded in the model's metadata and in the manifest.
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inp, out = g.input[0], g.output[0]
    # tf2onnx may put layout-only ops (a Reshape for NHWC->NCHW) before the first
    # QuantizeLinear; they work on integers just as well, so follow them.
    cur, path_names = inp.name, []
    while True:
        users = [n for n in g.node if cur in n.input]
        if len(users) == 1 and users[0].op_type in _LAYOUT_OPS and users[0].input[0] == cur:
            cur = users[0].output[0]
            path_names.append(cur)
            continue
        break
    for vi in [v for v in g.value_info if v.name in path_names]:
        g.value_info.remove(vi)  # they now carry integers; let the runtime infer them
    q = [n for n in users if n.op_type == "QuantizeLinear"]
    dq = [n for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] == out.name]
    if len(q) != 1 or len(users) != 1 or len(dq) != 1:
        raise ConversionError("unexpected QDQ layout at the graph's input or output")
    q, dq = q[0], dq[0]
    in_scale, in_zp = inits[q.input[1]], inits[q.input[2]]
    out_scale, out_zp = inits[dq.input[1]], inits[dq.input[2]]
    q_out, dq_in = q.output[0], dq.input[0]
    g.node.remove(q)
    g.node.remove(dq)
    for n in g.node:
        n.input[:] = [cur if i == q_out else (out.name if i == dq_in else i) for i in n.input]
        n.output[:] = [out.name if o == dq_in else o for o in n.output]
    elem = onnx.helper.np_dtype_to_tensor_dtype(in_zp.dtype)
    inp.type.tensor_type.elem_type = elem
    out.type.tensor_type.elem_type = onnx.helper.np_dtype_to_tensor_dtype(out_zp.dtype)
    meta = {
        "input_scale": float(in_scale),
        "input_zero_point": int(in_zp),
        "output_scale": float(out_scale),
        "output_zero_point": int(out_zp),
    }
    for k, v in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, repr(v)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return meta


def build_onnx_int8(ctx: Context, path: Path) -> dict:
    """ORT static QDQ quantization; the activation type is picked by measured validation accuracy."""
    import tempfile

    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edge.runtime import Model

    scores = {}
    with tempfile.TemporaryDirectory(prefix="onnx-int8-") as tmp:
        tmp = Path(tmp)
        src = tmp / "float.onnx"
        import onnx

        onnx.save(_onnx_float_proto(ctx), str(src))
        pre = tmp / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # no sympy on the Pi side
        for act in ("int8", "uint8"):
            cand = tmp / f"{act}.onnx"
            _quantize_onnx(ctx, pre, cand, act)
            _integer_io(cand)
            scores[act] = float((Model(cand).predict(ctx.val_x).argmax(1) == ctx.val_y).mean())
        best = max(scores, key=lambda a: (scores[a], a == "int8"))  # ties go to int8 (same as TFLite)
        path.write_bytes((tmp / f"{best}.onnx").read_bytes())
    log.info("onnx int8  activation type %s (validation accuracy %s)", best,
             ", ".join(f"{k} {v:.4%}" for k, v in scores.items()))
    return {
        "quantization": "onnxruntime static QDQ, per-channel int8 weights",
        "activation_type": best,
        "activation_choice": {"validation_accuracy": scores, "validation_images": int(len(ctx.val_y))},
        "opset": ctx.opset,
    }


FORMATS: list[Format] = [
    Format("tflite_float32", "model_float32.tflite", "tflite", "float32", build_tflite_float32,
           "TFLite, float32 weights and activations"),
    Format("tflite_int8", "model_int8.tflite", "tflite", "int8", build_tflite_int8,
           "TFLite, full-integer int8 (weights, activations, I/O)"),
    Format("onnx_float32", "model_float32.onnx", "onnx", "float32", build_onnx_float32,
           "ONNX via tf2onnx, float32"),
    Format("onnx_int8", "model_int8.onnx", "onnx", "int8", build_onnx_int8,
           "ONNX, onnxruntime static QDQ int8"),
]
BY_KEY = {f.key: f for f in FORMATS}
