"""The requant-mode registry: one entry per mode, consistent with the spec and the ISA."""

import re

import numpy as np
import pytest

import tessera.numerics as tn
from tessera.numerics.modes import MODES, RequantMode, get_mode
from tessera.spec import REQUANT_MODES, isa


def test_registry_matches_spec_and_isa():
    assert tuple(MODES) == REQUANT_MODES
    for name, mode in MODES.items():
        assert mode.name == name
        assert mode.isa_code == isa.Mode.parse(name)
        assert get_mode(name) is mode and get_mode(mode) is mode


def test_every_public_name_resolves():
    from tessera.numerics import cnn, fixedpoint, modes, ops_tflite, requant_onnx, requant_tflite

    for module in (tn, cnn, fixedpoint, modes, ops_tflite, requant_onnx, requant_tflite):
        assert len(set(module.__all__)) == len(module.__all__), module.__name__
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


@pytest.mark.parametrize("bad", ["gemmlowp", "ONNX", None, 1])
def test_unknown_mode_is_refused_everywhere(bad):
    message = f"Requant mode must be 'onnx' or 'tflite', not {bad!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        get_mode(bad)
    with pytest.raises(ValueError, match=re.escape(message)):
        tn.requant_multipliers(0.1, 0.1, 0.1, bad)
    with pytest.raises(ValueError, match=re.escape(message)):
        tn.requantize(np.array([1]), np.array([1 << 30], np.uint32), 0, bad)
    with pytest.raises(ValueError, match=re.escape(message)):
        tn.quantize_tensor(np.zeros(2), 0.1, 0, bad)


def test_accumulator_widths_per_mode():
    assert MODES["onnx"].check_acc_bits(48) == 48
    with pytest.raises(ValueError, match=re.escape(
            "Requant mode 'tflite' takes 32-bit accumulators, not acc_bits=48; use mode 'onnx' "
            "for 48-bit accumulators")):
        MODES["tflite"].check_acc_bits(48)


def test_mode_behaviour_comes_from_the_entry():
    # A tie: 2.5 / 1.0 rounds to 2 (ties to even) in onnx and 3 (ties away) in tflite.
    x = np.array([2.5, -2.5, 0.5], np.float32)
    np.testing.assert_array_equal(tn.quantize_tensor(x, 1.0, 0, "onnx"), [2, -2, 0])
    np.testing.assert_array_equal(tn.quantize_tensor(x, 1.0, 0, "tflite"), [3, -3, 1])
    np.testing.assert_array_equal(tn.quantize_tensor(x, 1.0, 0, MODES["tflite"]), [3, -3, 1])
    custom = RequantMode(name="tflite", isa_code=isa.Mode.TFLITE, acc_bits=(32,),
                         multipliers=MODES["tflite"].multipliers,
                         requantize=MODES["tflite"].requantize, round=np.floor,
                         runtime="test", ops_module="tessera.numerics.ops_tflite")
    np.testing.assert_array_equal(tn.quantize_tensor(x, 1.0, 0, custom), [2, -3, 0])
    m, s = tn.requant_multipliers(0.5, 1.0, 1.0, "tflite")
    np.testing.assert_array_equal((m, s), ([1 << 30], [0]))
    np.testing.assert_array_equal(
        tn.requantize(np.array([3, -3]), m, s, "tflite"), [2, -1])  # 1.5 -> 2, -1.5 -> -1
    m, s = tn.requant_multipliers(0.5, 1.0, 1.0, "onnx")
    np.testing.assert_array_equal(tn.requantize(np.array([3, -3]), m, s, "onnx"), [2, -2])


def test_tflite_mode_ops_module_has_the_contract_kernels():
    from tessera.numerics import ops_tflite

    ops = MODES["tflite"].ops
    assert ops is ops_tflite
    for name in ("conv2d", "depthwise_conv2d", "average_pool2d", "max_pool2d", "mean_hw", "add",
                 "softmax", "pad", "concatenate"):
        assert callable(getattr(ops, name)), name
    assert set(ops.__all__) <= set(dir(ops))


def test_every_mode_has_a_hardware_unit():
    from tessera.hw.postproc import PostProcessor

    assert set(PostProcessor._REQUANT_UNITS) == set(MODES)
