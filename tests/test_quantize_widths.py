"""quantize(..., bits=, weight_bits=): 4/8/16-bit models, validation, save/load."""

import numpy as np
import pytest

import tessera
from tessera.quantize import QuantizedModel


@pytest.fixture(scope="module")
def digits():
    from tessera.cli.demo import train_digits_mlp
    return train_digits_mlp(0)


@pytest.mark.parametrize("bits, weight_bits, floor", [(4, 4, 0.9), (4, 8, 0.9), (8, 8, 0.95),
                                                      (16, 16, 0.95), (16, 8, 0.95)])
def test_digits_accuracy_per_width(digits, bits, weight_bits, floor):
    clf, x_train, x_test, _, y_test = digits
    q = tessera.quantize(clf, calibration=x_train, bits=bits, weight_bits=weight_bits)
    assert (q.input_bits, q.weight_bits) == (bits, weight_bits)
    dtype = np.int8 if bits <= 8 else np.int16
    x_q = q.quantize_input(x_test)
    assert x_q.dtype == dtype
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    assert lo <= x_q.min() and x_q.max() <= hi
    y_q = q.predict(x_q, raw=True)
    assert y_q.dtype == dtype
    accuracy = np.mean(np.argmax(y_q, axis=1) == y_test)
    float_accuracy = np.mean(clf.predict(x_test) == y_test)
    print(f"digits int{bits}/w{weight_bits}: {accuracy:.4f} (float {float_accuracy:.4f})")
    assert accuracy >= floor
    for layer in q.layers:
        w_max = (1 << (weight_bits - 1)) - 1
        assert layer.weight.dtype == (np.int8 if weight_bits <= 8 else np.int16)
        assert -w_max <= layer.weight.min() and layer.weight.max() <= w_max
        if bits == 16:
            assert layer.input_zero_point == 0 and layer.output_zero_point == 0


def test_16_bit_is_closer_to_float_than_8_bit(digits):
    clf, x_train, x_test, _, _ = digits
    errors = {}
    for bits in (4, 8, 16):
        q = tessera.quantize(clf, calibration=x_train, bits=bits)
        ref = x_test @ clf.coefs_[0] + clf.intercepts_[0]
        ref = np.maximum(ref, 0) @ clf.coefs_[1] + clf.intercepts_[1]
        errors[bits] = float(np.abs(q.predict(x_test) - ref).max())
    assert errors[16] < errors[8] < errors[4]


def test_save_load_keeps_widths(digits, tmp_path):
    clf, x_train, x_test, _, _ = digits
    q = tessera.quantize(clf, calibration=x_train, bits=4, weight_bits=16, mode="tflite")
    q.save(tmp_path / "m.npz")
    again = QuantizedModel.load(tmp_path / "m.npz")
    assert (again.input_bits, again.weight_bits) == (4, 16)
    x_q = q.quantize_input(x_test)
    np.testing.assert_array_equal(again.predict(x_q, raw=True), q.predict(x_q, raw=True))


def test_width_errors(digits):
    clf, x_train, _, _, _ = digits
    with pytest.raises(ValueError, match=r"bits must be one of \(4, 8, 16\), not 6"):
        tessera.quantize(clf, calibration=x_train, bits=6)
    with pytest.raises(ValueError, match=r"weight_bits must be one of \(4, 8, 16\), not 32"):
        tessera.quantize(clf, calibration=x_train, weight_bits=32)
    tanh = [(np.ones((3, 2)), np.zeros(2), "tanh")]
    with pytest.raises(ValueError, match="Layer 'fc0': activation 'tanh' needs the 8-bit lookup "
                                         "table, which 4-bit activations do not have"):
        tessera.quantize(tanh, calibration=np.eye(3), bits=4)
    q = tessera.quantize(clf, calibration=x_train, bits=4)
    with pytest.raises(ValueError, match="ONNX export writes int8 QDQ models; this model has "
                                         "4-bit activations"):
        q.to_onnx()
    with pytest.raises(ValueError, match=r"Raw input must be an int16 array \[M, 64\]"):
        tessera.quantize(clf, calibration=x_train, bits=16).predict(
            np.zeros((1, 64), np.int8), raw=True)
