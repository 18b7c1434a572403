"""MLPerf Tiny models on the RTL of the CNN presets (``connect("sim")``) equal TFLite Micro.

Each model runs resident through the real host driver into the Verilated RTL of a preset's
configuration on 10 int8 inputs of tests/test_mlperf_device.py (all -128, all 127, the zero
point, two checkerboards, one near the zero point, four random): the outputs are TFLite Micro's
bit for bit (the tflite-micro wheel, the oracle of tests/test_mlperf_device.py), and every
counter of the RTL (cycles, compute, stall, MACs, link
bytes) equals the emulator's after the same requests. (The ULX3S-85F preset drains 8 elements
per cycle, which the Core does not build yet: its models are not run here.)
"""

import numpy as np
import pytest
from test_mlperf_device import MODELS, _inputs
from tflite_micro.python.tflite_micro import runtime as tflm

import tessera
from tessera.compiler import CNN_PRESETS

#: Which of tests/test_mlperf_device.py's inputs run (its first ten are extremes and near the
#: zero point, the rest random).
INPUTS = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13]


def _tflm(name, x):
    interpreter = tflm.Interpreter.from_file(str(MODELS / name))
    out = []
    for sample in x:
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        out.append(interpreter.get_output(0)[0].copy())
    return np.stack(out)


def _run(target, config, model, x):
    with tessera.connect(target, config=config) as dev:
        dev.clear_counters()
        y = dev.run(model, x, raw=True)
        return y, dev.counters()


def _check(name, preset):
    """Run model ``name`` on the emulator and on the RTL of ``preset``; compare with TFLM."""
    model = tessera.load_model(MODELS / name, mode="tflite")
    config = CNN_PRESETS[preset].config
    x = _inputs(model.input_shape, model.input_zero_point, seed=len(name))[INPUTS]
    expected = _tflm(name, x)
    want, emu_counters = _run("emu", config, model, x)
    np.testing.assert_array_equal(want, expected)
    got, rtl_counters = _run("sim", config, model, x)
    np.testing.assert_array_equal(got, expected)
    assert rtl_counters == emu_counters
    assert len({row.tobytes() for row in got}) > len(INPUTS) // 2      # they discriminate


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["icebreaker-cnn"])
def test_kws_on_the_rtl_equals_tflite_micro(preset):
    _check("kws_ref_model.tflite", preset)
