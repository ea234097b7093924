"""Run a .tflite or .onnx model with whichever light interpreter is installed.

No TensorFlow here, ever: on a Raspberry Pi the choices are

* ``ai_edge_litert`` (pip ``ai-edge-litert``), preferred for ``.tflite``,
* ``tflite_runtime`` (pip ``tflite-runtime``, Python <= 3.11, numpy < 2),
* ``onnxruntime`` (pip ``onnxruntime``) for ``.onnx``.

Every consumer (the camera runner, the parity gate, the benchmarks) goes
through :class:`Model`, so float <-> int8 conversion happens in exactly one
place, with the input and output tensors' own scale and zero point.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import contract

TFLITE_RUNTIMES = ("ai_edge_litert", "tflite_runtime")
ONNX_RUNTIMES = ("onnxruntime",)
PIP_NAME = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "onnxruntime": "onnxruntime"}


class ModelError(RuntimeError):
    """A model file is missing, damaged, of an unknown kind, or no interpreter can run it."""


class RuntimeMissing(ModelError):
    """No interpreter for this kind of model is installed."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: "float32", "int8", "uint8"
    scale: float = 0.0  # 0.0 when not quantized
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8") and self.scale > 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def model_kind(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".tflite":
        return "tflite"
    if suffix == ".onnx":
        return "onnx"
    raise ModelError(f"{path}: unknown model type {suffix!r}; expected a .tflite or .onnx file")


def available_runtimes(kind: str) -> list[str]:
    """Interpreters installed for ``kind`` ("tflite" or "onnx"), most preferred first."""
    names = TFLITE_RUNTIMES if kind == "tflite" else ONNX_RUNTIMES
    found = []
    for name in names:
        try:
            importlib.import_module(name if name != "ai_edge_litert" else "ai_edge_litert.interpreter")
        except Exception:  # noqa: BLE001  (a broken install is as good as a missing one here)
            continue
        found.append(name)
    return found


def runtime_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(PIP_NAME.get(name, name))
    except Exception:  # noqa: BLE001
        return "unknown"


class Model:
    """One loaded model: ``predict`` takes contract-format float32 images and returns probabilities.

    ``threads`` is the interpreter's thread count (None: the interpreter's default).
    ``runtime`` forces an interpreter by module name; default: the best installed one.
    """

    def __init__(self, path: str | os.PathLike, *, runtime: str | None = None, threads: int | None = None):
        self.path = Path(path)
        self.kind = model_kind(self.path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found; run `make export` or pass --model")
        if runtime is None:
            found = available_runtimes(self.kind)
            if not found:
                wanted = TFLITE_RUNTIMES if self.kind == "tflite" else ONNX_RUNTIMES
                raise RuntimeMissing(
                    f"{self.path}: no interpreter for .{self.kind} installed; "
                    f"pip install {' or '.join(PIP_NAME[w] for w in wanted)}"
                )
            runtime = found[0]
        kinds = TFLITE_RUNTIMES if self.kind == "tflite" else ONNX_RUNTIMES
        if runtime not in kinds:
            raise ModelError(f"{self.path}: the runtime {runtime!r} cannot run a .{self.kind} model; "
                             f"use one of {', '.join(kinds)}")
        self.runtime = runtime
        self.threads = threads
        try:
            if self.kind == "tflite":
                self._load_tflite(runtime, threads)
            else:
                self._load_onnx(threads)
        except ModelError:
            raise
        except ImportError as e:
            raise RuntimeMissing(f"{self.path}: cannot import {runtime} ({e}); pip install {PIP_NAME.get(runtime, runtime)}") from None
        except Exception as e:  # noqa: BLE001  (interpreters raise anything on a bad file)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(
                f"{self.path}: not a loadable {self.kind} model ({first}); the file is damaged or truncated, "
                "re-run `make export`"
            ) from None
        shape = self.input.shape
        if len(shape) != 4 or tuple(shape[1:]) != contract.INPUT_SHAPE:
            raise ModelError(f"{self.path}: input shape {shape} is not (N, 28, 28, 1) as the contract requires")
        self.batch = int(shape[0]) if shape[0] > 0 else 0  # 0: any batch
        self._uint8_inputs = None  # each uint8 pixel value encoded (predict_uint8), made on first use

    # -- loading ----------------------------------------------------------------------------
    def _load_tflite(self, runtime: str, threads: int | None) -> None:
        mod = importlib.import_module(f"{runtime}.interpreter")
        kwargs = {"model_path": str(self.path)}
        if threads:
            kwargs["num_threads"] = int(threads)
        interp = mod.Interpreter(**kwargs)
        interp.allocate_tensors()
        (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
        self._interp = interp
        self._in_index, self._out_index = inp["index"], out["index"]
        self.input = _tflite_info(inp)
        self.output = _tflite_info(out)

    def _load_onnx(self, threads: int | None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(self.path), sess_options=so, providers=["CPUExecutionProvider"])
        (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
        self._sess = sess
        self._in_name, self._out_name = inp.name, out.name
        meta = sess.get_modelmeta().custom_metadata_map
        self.input = _onnx_info(inp, meta, "input")
        self.output = _onnx_info(out, meta, "output")

    # -- inference --------------------------------------------------------------------------
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Contract float32 [0,1] -> the input tensor's dtype (the one place inputs are quantized)."""
        if self.input.quantized:
            return contract.quantize(x, self.input.scale, self.input.zero_point, np.dtype(self.input.dtype))
        return np.asarray(x, dtype=np.float32)

    def decode(self, y: np.ndarray) -> np.ndarray:
        """Output tensor -> float32 probabilities (the one place outputs are dequantized)."""
        if self.output.quantized:
            return contract.dequantize(y, self.output.scale, self.output.zero_point)
        return np.asarray(y, dtype=np.float32)

    def invoke(self, q: np.ndarray) -> np.ndarray:
        """Run one already-encoded batch of the model's own batch size; returns the raw output."""
        if self.kind == "tflite":
            self._interp.set_tensor(self._in_index, q)
            self._interp.invoke()
            return self._interp.get_tensor(self._out_index)
        return self._sess.run([self._out_name], {self._in_name: q})[0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """float32 images (N, 28, 28, 1) or (28, 28, 1) in [0,1] -> (N, 10) float32 probabilities."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[np.newaxis]
        return self._predict_encoded(self.encode(x))

    def _predict_encoded(self, q: np.ndarray) -> np.ndarray:
        """``predict`` of images already encoded for the input tensor (N, 28, 28, 1)."""
        if self.batch == 0:
            return self.decode(self.invoke(q))
        n = len(q)
        raw = None  # raw outputs of all batches, decoded once at the end (not once per crop)
        step = self.batch
        for i in range(0, n - n % step, step):
            y = self.invoke(q[i : i + step])
            if raw is None:
                raw = np.empty((n,) + y.shape[1:], y.dtype)
            raw[i : i + step] = y
        if n % step:  # pad the last partial batch
            pad = np.zeros((step,) + q.shape[1:], q.dtype)
            pad[: n % step] = q[n - n % step :]
            y = self.invoke(pad)
            if raw is None:
                raw = np.empty((n,) + y.shape[1:], y.dtype)
            raw[n - n % step :] = y[: n % step]
        if raw is None:
            return np.empty((0, self.output.shape[-1]), np.float32)
        return self.decode(raw)

    def predict_uint8(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) contract images -> (N, 10) probabilities: ``predict(contract.to_float(
        images))``, with each pixel encoded by looking its value up (the same bytes, without the
        float copy and its quantizing: 3 us a frame's crops instead of 20)."""
        x = np.asarray(images)
        if x.dtype != np.uint8 or x.ndim not in (2, 3) or x.shape[-2:] != (contract.SIZE, contract.SIZE):
            return self.predict(contract.to_float(images))
        if self._uint8_inputs is None:
            self._uint8_inputs = self.encode(np.arange(256, dtype=np.uint8).astype(np.float32) / 255.0)
        q = self._uint8_inputs[x if x.ndim == 3 else x[np.newaxis]]
        return self._predict_encoded(q[..., np.newaxis])

    def describe(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.kind,
            "runtime": self.runtime,
            "runtime_version": runtime_version(self.runtime),
            "threads": self.threads,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
        }


def _tflite_info(d: dict) -> TensorInfo:
    scale, zp = d.get("quantization", (0.0, 0))
    return TensorInfo(
        name=str(d["name"]),
        shape=tuple(int(v) for v in d["shape"]),
        dtype=np.dtype(d["dtype"]).name,
        scale=float(scale),
        zero_point=int(zp),
    )


_ONNX_DTYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


def _onnx_info(node, meta: dict, which: str) -> TensorInfo:
    shape = tuple(int(v) if isinstance(v, int) else -1 for v in node.shape)
    return TensorInfo(
        name=node.name,
        shape=shape,
        dtype=_ONNX_DTYPES.get(node.type, node.type),
        # Quantized ONNX I/O carries its scale/zero point in the model's metadata (set at export).
        scale=float(meta.get(f"{which}_scale", 0.0)),
        zero_point=int(meta.get(f"{which}_zero_point", 0)),
    )
