"""MLPerf Tiny models on the RTL of the CNN presets that take too long for the default suite.

Run by name (not collected by default: the files are not ``test_*.py``), as
``test_sim_cnn_mlperf.py`` (which runs KWS on the iCEBreaker preset in the default suite): each
model on 10 inputs, the repository's real samples first, through ``connect("sim",
config=<preset>)``: outputs equal to TFLite Micro's, every counter to the emulator's.

- IC (ResNet-8) on ``icebreaker-cnn``, its weights streamed (21,120 B per inference): about
  29 M simulated cycles (~6 CPU-minutes; 870 s measured on the loaded 2-core machine).
- The four models (KWS, IC, VWW, AD) on ``ulx3s-85f-cnn`` (32x4, 8 drain lanes): 0.57 M, 1.79 M,
  2.86 M and 0.71 M cycles for the 10 inputs with the weights' loads; the anomaly detector
  streams 2,560 B per inference (its weights exceed WGT by that much). About 42 minutes on the
  loaded machine, 17.5 CPU-minutes with the 32-lane build (docs/simulation.md).

    pytest -m slow tests/slow_sim_cnn_mlperf.py
    pytest -m slow tests/slow_sim_cnn_mlperf.py -k ulx3s
"""

import pytest

from test_sim_cnn_mlperf import _check


@pytest.mark.slow
def test_ic_on_the_icebreaker_rtl_equals_tflite_micro():
    _check("ic", "icebreaker-cnn")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["kws", "ic", "vww", "ad"])
def test_mlperf_tiny_on_the_ulx3s_rtl_equals_tflite_micro(task):
    _check(task, "ulx3s-85f-cnn")
