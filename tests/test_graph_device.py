"""The device runs graphs that are dense chains and refuses the others, naming the operation."""

from pathlib import Path

import numpy as np
import pytest

import tessera

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"


def test_device_refuses_a_cnn_naming_the_first_operation():
    qgraph = tessera.load_model(MODELS / "kws_ref_model.tflite", mode="tflite")
    x = np.zeros((2,) + qgraph.input_shape, np.int8)
    with tessera.connect("emu") as device:
        with pytest.raises(tessera.UnsupportedModelError,
                           match=r"^The device cannot run operation 0 \(CONV_2D, output "
                                 r"'functional_1/activation/Relu;.*'\) of graph "
                                 r"'.*kws_ref_model.tflite' yet: the accelerator executes chains "
                                 r"of FULLY_CONNECTED layers .* model.predict\(x\)$"):
            device.run(qgraph, x, raw=True)


def test_device_runs_a_dense_chain_graph():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 5)).astype(np.float32)
    layers = [(rng.normal(size=(5, 4)), rng.normal(size=4), "relu"),
              (rng.normal(size=(4, 3)), rng.normal(size=3), "sigmoid")]
    qgraph = tessera.quantize(layers, calibration=x, mode="tflite").to_graph()
    with tessera.connect("emu") as device:
        np.testing.assert_array_equal(device.run(qgraph, x), qgraph.predict(x))


def test_mlperf_autoencoder_still_runs_on_the_device():
    """ad01 (ten FULLY_CONNECTED layers) loads as a dense chain and the emulator equals TFLM."""
    from tessera.cli.demo_kws import tflite_micro_outputs
    path = MODELS / "ad01_int8.tflite"
    qmodel = tessera.load_model(path, mode="tflite")
    assert isinstance(qmodel, tessera.QuantizedModel)
    x = np.random.default_rng(4).integers(-128, 128, size=(6, 640)).astype(np.int8)
    x[0], x[1] = -128, 127
    expected = tflite_micro_outputs(path, x)
    with tessera.connect("emu") as device:
        np.testing.assert_array_equal(device.run(qmodel, x, raw=True), expected)
