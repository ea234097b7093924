"""Export: every artifact loads and predicts; int8 is really int8; the parity gate gates."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edge import contract  # noqa: E402
from edge.fsutil import sha256_file  # noqa: E402
from edge.manifest import load_manifest  # noqa: E402
from edge.runtime import Model, ModelError  # noqa: E402
from export import parity  # noqa: E402
from export.__main__ import main as export_main  # noqa: E402
from export.formats import FORMATS, tflite_float_tensors  # noqa: E402


def test_manifest_matches_files(exported):
    m = load_manifest(exported)
    assert [a.key for a in m.artifacts] == [f.key for f in FORMATS]
    for a in m.artifacts:
        a.verify()
        assert a.entry["bytes"] == a.path.stat().st_size and a.entry["sha256"] == sha256_file(a.path)
        assert a.entry["input"]["shape"] == [1, 28, 28, 1] and a.entry["output"]["shape"] == [1, 10]
    assert m.data["calibration"]["size"] == 200 and m.data["contract_version"] == contract.CONTRACT_VERSION
    assert m.data["source_model"]["sha256"] == sha256_file(exported / "model.keras")
    assert m.data["labels"] == [str(d) for d in range(10)]
    assert not list(exported.glob(".*tmp*")), "temporary files left behind"


def test_every_artifact_predicts_like_keras(exported, mnist):
    import keras

    x = contract.to_float(mnist[1][0][:300])
    ref = keras.models.load_model(exported / "model.keras").predict(x, verbose=0)
    for a in load_manifest(exported).artifacts:
        probs = Model(a.path).predict(x)
        assert probs.shape == (300, 10)
        if a.precision == "float32":
            assert np.abs(probs - ref).max() < 1e-5, a.key
        else:
            assert (probs.argmax(1) == ref.argmax(1)).mean() > 0.97, a.key


def test_uint8_crops_are_encoded_by_lookup_as_predict_would(exported, mnist):
    """predict_uint8 looks each pixel value up instead of converting to float and quantizing: the
    same probabilities, byte for byte, for every artifact, a batch and a single crop alike."""
    crops = mnist[1][0][:7]
    for a in load_manifest(exported).artifacts:
        model = Model(a.path)
        assert np.array_equal(model.predict_uint8(crops), model.predict(contract.to_float(crops))), a.key
        assert np.array_equal(model.predict_uint8(crops[3]), model.predict(contract.to_float(crops[3]))), a.key
        with pytest.raises(ValueError, match="28"):
            model.predict_uint8(crops[:, :20])


def test_int8_artifacts_are_integer(exported):
    m = load_manifest(exported)
    for a in m.artifacts:
        if a.precision != "int8":
            continue
        model = Model(a.path)
        assert model.input.dtype == "int8" or model.input.dtype == "uint8"
        assert model.output.dtype in ("int8", "uint8") and model.input.scale > 0 and model.output.scale > 0
        assert a.entry["input"]["scale"] == pytest.approx(model.input.scale)
    assert tflite_float_tensors(m.get("tflite_int8").path) == []
    import onnx

    g = onnx.load(str(m.get("onnx_int8").path)).graph
    produced_by = {o: n.op_type for n in g.node for o in n.output}
    heavy = [n for n in g.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    assert heavy and all(produced_by.get(n.input[1]) == "DequantizeLinear" for n in heavy)
    assert m.get("onnx_int8").entry["activation_type"] in ("int8", "uint8")


def test_int8_stem_is_space_to_depth_and_the_same_function(exported):
    """The int8 TFLite's 5x5 stride-2 stem is a space-to-depth and a 3x3 conv (XNNPACK's int8
    kernel on one channel is slow); the float TFLite keeps the Keras graph."""
    from ai_edge_litert.interpreter import Interpreter

    m = load_manifest(exported)
    ops = {}
    for key in ("tflite_int8", "tflite_float32"):
        interp = Interpreter(model_path=str(m.get(key).path))
        ops[key] = [d["op_name"] for d in interp._get_ops_details()]
    assert ops["tflite_int8"][0] == "SPACE_TO_DEPTH" and "SPACE_TO_DEPTH" not in ops["tflite_float32"]
    assert "space-to-depth" in m.get("tflite_int8").entry["stem"]


def _stem_model(first):
    import keras

    inp = keras.Input((28, 28, 1))
    x = first(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) + (1.0 if w.ndim == 1 else 0.0)
                       for w in model.get_weights()])  # BatchNorm variances stay positive
    return model


def test_space_to_depth_stem_computes_what_the_5x5_conv_did():
    import keras

    from export.formats import space_to_depth_stem

    model = _stem_model(keras.layers.Conv2D(8, 5, strides=2, padding="same", use_bias=False))
    moved = space_to_depth_stem(model)
    assert moved is not None and moved.layers[1].name == "space_to_depth"
    x = np.random.default_rng(1).random((16, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(moved(x, training=False), model(x, training=False), atol=1e-5)
    with_bias = _stem_model(keras.layers.Conv2D(8, 5, strides=2, padding="same"))
    np.testing.assert_allclose(space_to_depth_stem(with_bias)(x), with_bias(x, training=False), atol=1e-5)
    # Any other first layer is left alone.
    for first in (keras.layers.Conv2D(8, 5, padding="same"), keras.layers.Conv2D(8, 5, strides=2),
                  keras.layers.Conv2D(8, 3, strides=2, padding="same")):
        assert space_to_depth_stem(_stem_model(first)) is None
    inp = keras.Input((28, 28, 1))  # not a chain: the stem's output is used twice
    stem = keras.layers.Conv2D(8, 5, strides=2, padding="same")(inp)
    branch = keras.layers.Add()([stem, keras.layers.Conv2D(8, 3, padding="same")(stem)])
    assert space_to_depth_stem(keras.Model(inp, keras.layers.Flatten()(branch))) is None


def _copy(exported, tmp_path):
    d = tmp_path / "art"
    shutil.copytree(exported, d)
    return d


def _rewrite_manifest(d, key):
    """Make the manifest agree with a file the test changed, so only accuracy can fail the gate."""
    mf = json.loads((d / "manifest.json").read_text())
    for a in mf["artifacts"]:
        if a["key"] == key:
            a["bytes"] = (d / a["file"]).stat().st_size
            a["sha256"] = sha256_file(d / a["file"])
    (d / "manifest.json").write_text(json.dumps(mf))


# The fixture model is a 1-epoch smoke model (~94%): its decisions sit closer to the
# boundaries than a trained model's, so int8 may move a few more of them. The tests
# gate it a little more loosely; `make all` gates the real model with the defaults.
FAST_GATE = ("--max-int8-drop", "0.3", "--min-agreement", "0.99")


def _gate(d, mnist_dir, capsys, *extra):
    code = parity.main(["--artifacts", str(d), "--data", str(mnist_dir), *(extra or FAST_GATE)])
    return code, capsys.readouterr()


def test_gate_passes_on_good_artifacts_and_writes_reports(exported, mnist_dir, capsys):
    code, out = _gate(exported, mnist_dir, capsys)
    assert code == 0, out.err
    report = json.loads((exported / "parity.json").read_text())
    assert report["passed"] and len(report["artifacts"]) == 4
    row = report["artifacts"][1]
    assert {"accuracy", "delta_pp", "agreement", "max_abs_dprob", "per_class_accuracy", "changed_indices"} <= set(row)
    assert (exported / "parity_disagreements.png").read_bytes()[:4] == b"\x89PNG"
    assert "| model_int8.tflite | int8 |" in (exported / "parity.md").read_text()


def test_gate_fails_on_tampered_int8_weights(exported, mnist_dir, tmp_path, capsys):
    d = _copy(exported, tmp_path)
    path = d / "model_int8.tflite"
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    tensors = model.subgraphs[0].tensors
    # Shuffle the biggest int8 constant (a conv weight): a damaged model that still loads.
    weight = max((t for t in tensors if t.type == schema.TensorType.INT8 and model.buffers[t.buffer].data is not None),
                 key=lambda t: len(model.buffers[t.buffer].data))
    buf = model.buffers[weight.buffer]
    buf.data = np.random.default_rng(0).permutation(np.asarray(buf.data))
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    _rewrite_manifest(d, "tflite_int8")
    code, out = _gate(d, mnist_dir, capsys)
    assert code == 1
    assert "tflite_int8 (model_int8.tflite)" in out.err and ("below Keras" in out.err or "agrees" in out.err)
    assert "onnx_int8" not in out.err  # the others still pass


def test_gate_fails_on_changed_file(exported, mnist_dir, tmp_path, capsys):
    d = _copy(exported, tmp_path)
    with open(d / "model_float32.onnx", "ab") as f:
        f.write(b"\0")
    code, out = _gate(d, mnist_dir, capsys)
    assert code == 1 and "model_float32.onnx" in out.err and "changed since export" in out.err


def test_gate_thresholds_are_flags(exported, mnist_dir, capsys):
    code, out = _gate(exported, mnist_dir, capsys, "--min-agreement", "1.01")
    assert code == 1 and "limit 101.00%" in out.err


@pytest.mark.parametrize("damage", ["truncate", "random"])
def test_damaged_model_file_is_a_clear_error(exported, tmp_path, damage):
    for name in ("model_int8.tflite", "model_int8.onnx"):
        p = tmp_path / name
        blob = (exported / name).read_bytes()
        p.write_bytes(blob[: len(blob) // 3] if damage == "truncate" else np.random.default_rng(1).bytes(5000))
        with pytest.raises(ModelError) as e:
            Model(p)
        msg = str(e.value)
        assert str(p) in msg and "re-run `make export`" in msg and "\n" not in msg


def test_bad_inputs_to_export(tmp_path, capsys):
    assert export_main(["--model", str(tmp_path / "none.keras")]) == 2
    assert "no such model" in capsys.readouterr().err
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"\x00garbage" * 100)
    assert export_main(["--model", str(junk), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(junk) in err and "not a Keras model" in err and err.count("\n") == 1
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_manifest_naming_missing_file(exported, mnist_dir, tmp_path, capsys):
    d = _copy(exported, tmp_path)
    (d / "model_float32.tflite").unlink()
    code, out = _gate(d, mnist_dir, capsys)
    assert code == 1 and "model_float32.tflite" in out.err and "missing" in out.err
    with pytest.raises(ModelError, match="no manifest"):
        load_manifest(tmp_path / "nowhere")
