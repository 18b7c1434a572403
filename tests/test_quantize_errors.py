"""Bad input to the quantizer raises errors that name the problem and the fix."""

import re
import zipfile

import numpy as np
import pytest

import tessera
from tessera.quantize import QuantizedLayer, QuantizedModel


def _layers():
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(6, 5)), rng.normal(size=5), "relu"),
            (rng.normal(size=(5, 3)), rng.normal(size=3), None)]


X = np.random.default_rng(1).normal(size=(40, 6))


def _raises(exc, message, fn, *args, **kwargs):
    with pytest.raises(exc, match=re.escape(message)):
        fn(*args, **kwargs)


def test_calibration_errors():
    q = tessera.quantize
    _raises(ValueError, "quantize() needs calibration data: pass calibration=x, a "
            "representative float batch [M, 6] of real inputs", q, _layers())
    _raises(ValueError, "calibration is empty (0 rows); pass at least one representative "
            "input row", q, _layers(), calibration=np.zeros((0, 6)))
    _raises(ValueError, "calibration has 7 features but layer 'fc0' expects 6 inputs; pass "
            "data shaped [M, 6]", q, _layers(), calibration=np.zeros((4, 7)))
    _raises(ValueError, "calibration must be a 2-D array [M, 6], not shape (6,); reshape it",
            q, _layers(), calibration=np.zeros(6))
    bad = X.copy()
    bad[3, 2] = np.nan
    bad[5, 0] = np.inf
    _raises(ValueError, "calibration contains 2 NaN/infinite value(s), the first at row 3, "
            "column 2; drop or impute those rows", q, _layers(), calibration=bad)
    _raises(TypeError, "calibration must be a real numeric array, not dtype <U1", q, _layers(),
            calibration=np.full((2, 6), "a"))


def test_model_errors():
    q = tessera.quantize
    layers = _layers()
    layers[1] = (np.where(np.eye(5, 3) > 0, np.inf, 0.0), np.zeros(3), None)
    _raises(ValueError, "Layer 'fc1' weight contains 3 NaN/infinite value(s), the first at "
            "index (0, 0); fix the model's parameters", q, layers, calibration=X)
    layers = _layers()
    layers[0] = (layers[0][0], np.array([0, 0, np.nan, 0, 0]), "relu")
    _raises(ValueError, "Layer 'fc0' bias contains 1 NaN/infinite value(s), the first at index "
            "(2,)", q, layers, calibration=X)
    layers = _layers()
    layers[1] = (np.zeros((3, 4)), None, None)
    _raises(ValueError, "Layer 'fc1' expects 3 inputs but layer 'fc0' produces 5; every W must "
            "be shaped [in_features, out_features] (transpose PyTorch-style [out, in] weights)",
            q, layers, calibration=X)
    layers = _layers()
    layers[0] = (layers[0][0], np.zeros(4), "relu")
    _raises(ValueError, "Layer 'fc0': bias has 4 entries but the weight (6, 5) has 5 outputs",
            q, layers, calibration=X)
    layers = _layers()
    layers[0] = (layers[0][0], layers[0][1], "gelu")
    _raises(ValueError, "Layer 'fc0': unsupported activation 'gelu'; use one of 'none', 'relu', "
            "'relu6', 'sigmoid', 'tanh'", q, layers, calibration=X)
    _raises(TypeError, "Layer 'fc0' must be a (W, b, activation) tuple, not tuple of length 2",
            q, [(np.zeros((6, 2)), np.zeros(2))], calibration=X)
    _raises(ValueError, "The model is an empty list", q, [], calibration=X)
    _raises(TypeError, "Cannot quantize a builtins.dict; give a list of (W [in, out], b, "
            "activation) tuples, a fitted scikit-learn MLPClassifier/MLPRegressor, or a PyTorch "
            "nn.Sequential", q, {"W": 1}, calibration=X)
    from sklearn.neural_network import MLPRegressor
    _raises(ValueError, "The MLPRegressor is not fitted; call fit() before quantizing it", q,
            MLPRegressor(), calibration=X)


def test_option_errors():
    q = tessera.quantize
    _raises(ValueError, "mode must be one of 'onnx', 'tflite', not 'int4'", q, _layers(),
            calibration=X, mode="int4")
    _raises(ValueError, "calibration_method must be one of 'minmax', 'percentile', not 'kl'", q,
            _layers(), calibration=X, calibration_method="kl")
    _raises(ValueError, "percentile must be a number in (0, 100] (e.g. 99.99), not 120", q,
            _layers(), calibration=X, calibration_method="percentile", percentile=120)
    _raises(TypeError, "per_channel must be True or False, not 'yes'", q, _layers(),
            calibration=X, per_channel="yes")


def test_overflow_is_refused_with_layer_and_k():
    k = 140_000
    weights = [(np.ones((k, 1)), np.zeros(1), None)]
    symmetric = np.array([[1.0] * k, [-1.0] * k])        # input zero point 0
    _raises(OverflowError, "Layer 'fc0' (K=140000) can overflow its int32 accumulator: for "
            f"some int8 input |sum_k x*w + bias| reaches {128 * 127 * k} > 2**31 - 1; split the "
            "layer along K into layers of at most 132104 inputs", tessera.quantize, weights,
            calibration=symmetric)
    positive = np.abs(symmetric)                          # input zero point -128: folding fails
    _raises(OverflowError, "Layer 'fc0' (K=140000) cannot run on int32 accumulators: Folded "
            "bias", tessera.quantize, weights, calibration=positive)
    # The bias alone can overflow int32 when it dwarfs input_scale * weight_scale.
    tiny = [(np.full((4, 2), 1e-3), np.array([0.0, 1.0]), None)]
    _raises(OverflowError, "Layer 'fc0': bias of output channel 1 (1) divided by its scale "
            "input_scale*weight_scale", tessera.quantize, tiny,
            calibration=np.array([[1e-3] * 4, [-1e-3] * 4]))


def test_predict_errors():
    qmodel = tessera.quantize(_layers(), calibration=X)
    _raises(ValueError, "Input has 5 features but the model expects 6", qmodel.predict,
            np.zeros((2, 5)))
    _raises(ValueError, "Input must be a 2-D array [M, 6], not shape (6,); reshape it",
            qmodel.predict, np.zeros(6))
    _raises(ValueError, "Input contains NaN or infinity; clean the data first", qmodel.predict,
            np.full((1, 6), np.nan))
    _raises(ValueError, "Raw input must be an int8 array [M, 6], not float64 (2, 6); use "
            "quantize_input() on float data", qmodel.predict, np.zeros((2, 6)), raw=True)


def test_layer_and_model_validation():
    layer = tessera.quantize(_layers(), calibration=X).layers[0]
    fields = {f: getattr(layer, f) for f in layer.__dataclass_fields__}
    bad_weight = layer.weight.copy()
    bad_weight[0, 0] = -128
    _raises(ValueError, "Layer 'fc0': symmetric int8 weights must lie in -127..127",
            QuantizedLayer, **{**fields, "weight": bad_weight})
    _raises(ValueError, "Layer 'fc0': input_zero_point must be an integer from -128 to 127, "
            "not 300", QuantizedLayer, **{**fields, "input_zero_point": 300})
    _raises(ValueError, "Layer 'fc0': activation 'lut' needs lut, an int8 array of shape (256,)",
            QuantizedLayer, **{**fields, "activation": "lut"})
    _raises(ValueError, "Layer 'fc0': bias must be an int32 array of shape (5,), not int64",
            QuantizedLayer, **{**fields, "bias": layer.bias.astype(np.int64)})
    with pytest.raises(ValueError, match="Layer 'fc0': input scale/zero point .* differ from "
                                         "layer 'fc0'.* they must chain"):
        QuantizedModel([layer, QuantizedLayer(**{**fields, "weight": np.ones((5, 5), np.int8)})])
    assert not layer.weight.flags.writeable


def test_load_errors(tmp_path):
    qmodel = tessera.quantize(_layers(), calibration=X)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match=r"'.*garbage.npz' is not a readable Tessera quantized "
                                         r"model \(.npz written by QuantizedModel.save\)"):
        QuantizedModel.load(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ValueError, match=r"is an .npz archive but not a Tessera quantized model "
                                         r"\(no 'meta' entry\)"):
        QuantizedModel.load(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable Tessera quantized model .*pickle"):
        QuantizedModel.load(pickled)
    # Future version and corrupted members.
    good = tmp_path / "good.npz"
    qmodel.save(good)
    with np.load(good) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = arrays["meta"].tobytes().decode()
    newer = tmp_path / "newer.npz"
    np.savez(newer, **{**arrays, "meta": np.frombuffer(
        meta.replace('"version": 1', '"version": 99').encode(), np.uint8)})
    with pytest.raises(ValueError, match="has format version 99; this Tessera reads versions 1 "
                                         "to 2: upgrade tessera"):
        QuantizedModel.load(newer)
    missing = tmp_path / "missing.npz"
    np.savez(missing, **{k: v for k, v in arrays.items() if k != "layer1.bias"})
    with pytest.raises(ValueError, match="is corrupted: missing entry 'layer1.bias'"):
        QuantizedModel.load(missing)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{**arrays, "layer0.scales": np.array([-1.0, 1.0], np.float32)})
    with pytest.raises(ValueError, match="is corrupted: Layer 'fc0': input_scale must be a "
                                         "positive finite float32"):
        QuantizedModel.load(wrong)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="is not a readable Tessera quantized model"):
        QuantizedModel.load(truncated)
    assert zipfile.is_zipfile(good)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="it holds a single array, not an .npz archive"):
        QuantizedModel.load(single)
