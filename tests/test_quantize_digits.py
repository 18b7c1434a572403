"""End-to-end quantization of a real scikit-learn model (digits): accuracy and summary."""

import warnings

import numpy as np
import pytest

import tessera
from tessera.quantize import QuantizedModel


@pytest.fixture(scope="module")
def digits_mlp():
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    return clf, x_train, x_test, y_test


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_int8_accuracy_within_one_point(digits_mlp, mode, per_channel, method):
    clf, x_train, x_test, y_test = digits_mlp
    float_accuracy = np.mean(clf.predict(x_test) == y_test)
    assert float_accuracy > 0.9
    qmodel = tessera.quantize(clf, calibration=x_train, mode=mode, per_channel=per_channel,
                              calibration_method=method)
    assert isinstance(qmodel, QuantizedModel)
    assert qmodel.mode == mode
    assert all(layer.per_channel == per_channel for layer in qmodel.layers)
    int8_accuracy = np.mean(qmodel.predict(x_test).argmax(axis=1) == y_test)
    assert abs(int8_accuracy - float_accuracy) <= 0.01


def test_classifier_logits_match_sklearn(digits_mlp):
    clf, x_train, x_test, _ = digits_mlp
    qmodel = tessera.quantize(clf, calibration=x_train)
    # The float reference layers reproduce sklearn's pre-softmax scores exactly.
    from tessera.quantize.floatmodel import float_forward
    logits = float_forward(qmodel.float_layers, x_test)
    np.testing.assert_array_equal(logits.argmax(axis=1), clf.predict(x_test))
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
                               clf.predict_proba(x_test), rtol=1e-9, atol=1e-12)
    assert [layer.activation for layer in qmodel.layers] == ["relu", "none"]
    assert (qmodel.in_features, qmodel.out_features) == (64, 10)


def test_summary_reports_every_layer(digits_mlp):
    clf, x_train, _, _ = digits_mlp
    qmodel = tessera.quantize(clf, calibration=x_train, per_channel=False)
    text = qmodel.summary()
    lines = text.splitlines()
    assert lines[0].startswith("QuantizedModel 64 -> 32 -> 10, mode 'onnx'")
    header = next(line for line in lines if line.startswith("layer"))
    for column in ("shape", "activation", "w scale", "in scale", "in zp", "out scale",
                   "out zp", "mode", "max|err|", "err/LSB"):
        assert column in header
    fc0 = next(line for line in lines if line.startswith("fc0"))
    fc1 = next(line for line in lines if line.startswith("fc1"))
    assert "64x32" in fc0 and "relu" in fc0 and f"{float(qmodel.layers[0].input_scale):.4g}" in fc0
    assert "32x10" in fc1 and " no " in fc1
    from tessera.quantize.report import layer_errors
    errors = layer_errors(qmodel, qmodel.reference_input)
    # Error stays within a few output LSBs per layer on the calibration rows.
    for (max_err, rms), layer in zip(errors, qmodel.layers):
        assert 0 < rms <= max_err < 4 * float(layer.output_scale)
