"""MLPerf Tiny models on the RTL of the CNN presets (``connect("sim")``) equal TFLite Micro.

Each model runs resident through the real host driver into the Verilated RTL of a preset's
configuration on :data:`INPUTS` int8 inputs (all -128, all 127, the zero point, checkerboards,
random ones): the outputs are TFLite Micro's bit for bit (the tflite-micro wheel, the oracle of
tests/test_mlperf_device.py), and every counter of the RTL (cycles, compute, stall, MACs, link
bytes) equals the emulator's after the same requests. (The ULX3S-85F preset drains 8 elements
per cycle, which the Core does not build yet: its models are not run here.)
"""

from pathlib import Path

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime as tflm

import tessera
from tessera.compiler import CNN_PRESETS

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"
INPUTS = 10


def _inputs(shape, zero_point, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(INPUTS,) + tuple(shape), dtype=np.int16)
    x[0], x[1], x[2] = -128, 127, zero_point
    checker = np.indices(shape).sum(axis=0) % 2
    x[3], x[4] = np.where(checker, 127, -128), np.where(checker, -128, 127)
    return np.clip(x, -128, 127).astype(np.int8)


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
    x = _inputs(model.input_shape, model.input_zero_point, seed=len(name))
    expected = _tflm(name, x)
    want, emu_counters = _run("emu", config, model, x)
    np.testing.assert_array_equal(want, expected)
    got, rtl_counters = _run("sim", config, model, x)
    np.testing.assert_array_equal(got, expected)
    assert rtl_counters == emu_counters
    assert len({row.tobytes() for row in got}) > INPUTS // 2      # the inputs discriminate


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["icebreaker-cnn"])
def test_kws_on_the_rtl_equals_tflite_micro(preset):
    _check("kws_ref_model.tflite", preset)
