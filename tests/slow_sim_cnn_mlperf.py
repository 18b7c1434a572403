"""MLPerf Tiny models on the RTL of the CNN presets that take too long for the default suite.

Run by name (not collected by default: the files are not ``test_*.py``), as
``test_sim_cnn_mlperf.py`` (which runs KWS on the iCEBreaker preset on 4 inputs in the default
suite): each model on 10 inputs, the repository's real samples first, through ``connect("sim",
config=<preset>)``: outputs equal to TFLite Micro's, every counter to the emulator's.

- KWS (DS-CNN) on ``icebreaker-cnn``: about 6 M simulated cycles (~100 s).
- IC (ResNet-8) on ``icebreaker-cnn``, its weights streamed (21,120 B per inference): about
  29 M simulated cycles (~6 CPU-minutes; 870 s measured on the loaded 2-core machine).
- The four models (KWS, IC, VWW, AD) on ``ulx3s-85f-cnn`` (16x8, 8 drain lanes): 0.71 M, 1.60 M,
  3.05 M and 0.64 M cycles for the 10 inputs with the weights' loads (the emulator's counters),
  every model resident (the anomaly detector too since the 16x8 preset's WGT of 36,864 x 8 B).
  Its Verilator build and run times: docs/simulation.md (the 32x4 preset's took about 42
  minutes on the loaded machine, 17.5 CPU-minutes with the build).

    pytest -m slow tests/slow_sim_cnn_mlperf.py
    pytest -m slow tests/slow_sim_cnn_mlperf.py -k ulx3s
"""

import pytest

from test_sim_cnn_mlperf import _check


@pytest.mark.slow
def test_kws_on_the_icebreaker_rtl_equals_tflite_micro():
    _check("kws", "icebreaker-cnn")


@pytest.mark.slow
def test_ic_on_the_icebreaker_rtl_equals_tflite_micro():
    _check("ic", "icebreaker-cnn")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["kws", "ic", "vww", "ad"])
def test_mlperf_tiny_on_the_ulx3s_rtl_equals_tflite_micro(task):
    _check(task, "ulx3s-85f-cnn")
