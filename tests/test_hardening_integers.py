"""NumPy integers are taken wherever an int is; floats such as ``bits=8.0`` get a clear message."""

import re

import numpy as np
import pytest

import tessera
from tessera.quantize import QuantizedLayer
from tessera.runtime import HostLink, connect
from tessera.runtime.serial import SerialTransport
from tessera.spec import AcceleratorConfig, check_operand_bits


def test_config_takes_numpy_integers_and_stores_ints():
    config = AcceleratorConfig(rows=np.int64(4), cols=np.int32(4), input_bits=np.int64(8),
                               weight_bits=np.uint8(8), act_depth=np.uint16(256),
                               max_payload=np.int64(128), requant_cycles=np.int8(1))
    plain = AcceleratorConfig(rows=4, cols=4, act_depth=256, max_payload=128)
    assert config == plain and config.hash == plain.hash and config.to_json() == plain.to_json()
    assert all(type(getattr(config, name)) is int
               for name in ("rows", "cols", "input_bits", "weight_bits", "act_depth",
                            "max_payload", "acc_bits", "requant_cycles"))
    assert config.lut is True
    assert AcceleratorConfig().with_widths(np.int64(16)) == AcceleratorConfig().with_widths(16)


@pytest.mark.parametrize("changes, message", [
    ({"input_bits": 8.0}, "input_bits must be one of (4, 8, 16), not 8.0 (a float; pass the "
                          "integer 8)"),
    ({"weight_bits": np.float32(4)}, "weight_bits must be one of (4, 8, 16), not "
                                     "np.float32(4.0) (a float; pass the integer 4)"),
    ({"input_bits": "8"}, "input_bits must be one of (4, 8, 16), not '8'"),
    ({"rows": 4.0}, "Row count must be an integer from 1 to 64, not 4.0"),
    ({"cols": np.True_}, "Column count must be an integer from 1 to 64, not np.True_"),
    ({"acc_bits": 32.0}, "acc_bits must be one of (32, 48), not 32.0"),
    ({"act_depth": np.int64(1 << 17)}, "Activation buffer depth must be an integer from 1 to "
                                       "65536, not 131072"),
])
def test_config_refuses_floats_with_a_clear_message(changes, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        AcceleratorConfig(**changes)


def _layers():
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(6, 5)), rng.normal(size=5), "relu"),
            (rng.normal(size=(5, 3)), rng.normal(size=3), "none")]


X = np.random.default_rng(1).normal(size=(30, 6)).astype(np.float32)


@pytest.mark.parametrize("options, message", [
    ({"bits": 8.0}, "bits must be one of (4, 8, 16), not 8.0 (a float; pass the integer 8)"),
    ({"bits": 8, "weight_bits": 4.0}, "weight_bits must be one of (4, 8, 16), not 4.0 (a float; "
                                      "pass the integer 4)"),
    ({"bits": np.float64(16)}, "bits must be one of (4, 8, 16), not np.float64(16.0) (a float; "
                               "pass the integer 16)"),
    ({"bits": True}, "bits must be one of (4, 8, 16), not True"),
])
def test_quantize_refuses_float_widths_at_once(options, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        tessera.quantize(_layers(), calibration=X, **options)


@pytest.mark.parametrize("bits", [np.int64(4), np.int32(16)])
def test_numpy_integer_widths_quantize_and_run(bits):
    qmodel = tessera.quantize(_layers(), calibration=X, bits=bits)
    assert all(type(layer.input_bits) is int and type(layer.weight_bits) is int
               for layer in qmodel.layers)
    reference = tessera.quantize(_layers(), calibration=X, bits=int(bits))
    with connect("emu", config=AcceleratorConfig().with_widths(bits),
                 timeout_s=np.float32(2), retries=np.int64(3)) as dev:
        assert dev.link.retries == 3 and type(dev.link.retries) is int
        np.testing.assert_array_equal(dev.run(qmodel, X), reference.predict(X))


def test_quantized_layer_stores_int_widths():
    layer = tessera.quantize(_layers()[:1], calibration=X).layers[0]
    fields = {name: getattr(layer, name) for name in layer.__dataclass_fields__}
    again = QuantizedLayer(**{**fields, "input_bits": np.int64(8), "weight_bits": np.int16(8)})
    assert (type(again.input_bits), type(again.weight_bits)) == (int, int)
    with pytest.raises(ValueError, match=re.escape(
            "Layer 'fc0': weight_bits must be one of (4, 8, 16), not 8.0 (a float; pass the "
            "integer 8)")):
        QuantizedLayer(**{**fields, "weight_bits": 8.0})


def test_check_operand_bits():
    assert [check_operand_bits("b", v) for v in (4, np.int8(8), np.uint64(16))] == [4, 8, 16]
    for value in (2, 8.5, None, np.bool_(True)):
        with pytest.raises(ValueError, match="^b must be one of"):
            check_operand_bits("b", value)


@pytest.mark.parametrize("options, message", [
    ({"timeout_s": float("nan")}, "timeout_s must be a positive number of seconds, not nan"),
    ({"timeout_s": float("inf")}, "timeout_s must be a positive number of seconds, not inf"),
    ({"timeout_s": True}, "timeout_s must be a positive number of seconds, not True"),
    ({"retries": 2.0}, "retries must be a non-negative integer, not 2.0"),
])
def test_link_options(options, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        HostLink(None, max_payload=64, **options)


def test_serial_baud_takes_numpy_integers_and_refuses_floats():
    with pytest.raises(ValueError, match=re.escape("Baud rate must be a positive integer, not "
                                                   "115200.0")):
        SerialTransport("/dev/null", baud=115200.0)
