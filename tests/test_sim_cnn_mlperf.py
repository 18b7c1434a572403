"""MLPerf Tiny models on the RTL of the CNN presets (``connect("sim")``) equal TFLite Micro.

Each model runs through the real host driver into the Verilated RTL of a preset's configuration
on at least 10 int8 inputs: the real samples of ``tests/data/mlperf_tiny/samples.npz`` first
(two KWS utterances, one CIFAR-10 image, the first five anomaly-detection windows; it has none
for VWW), then inputs of tests/test_mlperf_device.py (all -128,
all 127, the zero point, checkerboards, near the zero point, random). The outputs are TFLite
Micro's bit for bit (the tflite-micro wheel, the oracle of tests/test_mlperf_device.py) and
every counter of the RTL (cycles, compute, stall, MACs, link bytes) equals the emulator's after
the same requests. Here KWS on :data:`QUICK` inputs (the two real utterances and the two
extremes; ~0.6 M cycles per inference): the default suite's budget. KWS on all 10, IC (ResNet-8,
2.9 M cycles per inference, ~6 CPU-minutes for 10) and the four models on the ULX3S-85F preset
(16x8, 8 drain lanes: its Verilator build alone takes longer than the default suite allows) are
in ``tests/slow_sim_cnn_mlperf.py``, run by name (docs/simulation.md).
"""

import numpy as np
import pytest
from test_mlperf_device import MODELS, _inputs

import tessera
from tessera.cli.demo_kws import tflite_micro_outputs
from tessera.compiler import CNN_PRESETS

SAMPLES = np.load(MODELS / "samples.npz")
#: How many inputs run per model (the real samples, then synthetic ones).
INPUTS = 10
#: Which synthetic inputs of tests/test_mlperf_device.py follow (extremes, near the zero point,
#: then random).
SYNTHETIC = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13]
#: How many of them the default suite's run takes: the real samples and the two extremes.
QUICK = 4


#: Model files of the tasks without real samples in samples.npz.
FILES = {"vww": "vww_96_int8.tflite"}


def _model_path(task):
    return MODELS / (str(SAMPLES[f"{task}_model"]) if f"{task}_model" in SAMPLES else FILES[task])


def _blocks(shape, block=8):
    """Return random images of ``block x block`` pixel squares, in place of real samples: VWW
    calls every pixel-noise input of tests/test_mlperf_device.py a person at about 0.97."""
    h, w, c = shape
    cells = np.random.default_rng(0).integers(-128, 128, (INPUTS, h // block, w // block, c))
    return np.kron(cells, np.ones((1, block, block, 1), dtype=cells.dtype)).astype(np.int8)


def _model_inputs(task, model, count=INPUTS):
    name = _model_path(task).name
    shape = model.input_shape if hasattr(model, "graph") else (model.in_features,)
    real = SAMPLES[f"{task}_inputs"] if f"{task}_inputs" in SAMPLES else _blocks(shape)
    synthetic = _inputs(shape, model.input_zero_point, seed=len(name))[SYNTHETIC]
    # at most half real samples (the anomaly detector has 196 windows): the extremes follow
    return np.concatenate([real[:INPUTS // 2], synthetic])[:count]


def _run(target, config, model, x):
    with tessera.connect(target, config=config) as dev:
        dev.clear_counters()
        y = dev.run(model, x, raw=True)
        return y, dev.counters()


def _check(task, preset, count=INPUTS):
    """Run the model of ``task`` on the emulator and on the RTL of ``preset`` (its first
    ``count`` inputs); compare them with TFLite Micro."""
    path = _model_path(task)
    model = tessera.load_model(path, mode="tflite")
    config = CNN_PRESETS[preset].config
    x = _model_inputs(task, model, count)
    expected = tflite_micro_outputs(path, x)
    want, emu_counters = _run("emu", config, model, x)
    np.testing.assert_array_equal(want, expected)
    got, rtl_counters = _run("sim", config, model, x)
    np.testing.assert_array_equal(got, expected)
    assert rtl_counters == emu_counters
    assert len({row.tobytes() for row in got}) > len(x) // 2      # the inputs discriminate


@pytest.mark.slow
def test_kws_on_the_icebreaker_rtl_equals_tflite_micro():
    _check("kws", "icebreaker-cnn", QUICK)
