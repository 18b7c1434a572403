"""MLPerf Tiny IC (ResNet-8) on the RTL of the iCEBreaker preset (slow; not collected by default).

As ``test_sim_cnn_mlperf.py`` (which runs KWS in the default suite): ResNet-8 with its weights
streamed (21,120 B per inference) on 10 inputs, the repository's real sample first, through
``connect("sim", config=<icebreaker-cnn>)``: outputs equal to TFLite Micro's, every counter to
the emulator's. About 29 M simulated cycles (~6 CPU-minutes), so the file is outside the default
suite's ``test_*.py``; run it with

    pytest -m slow tests/slow_sim_cnn_mlperf.py
"""

import pytest

from test_sim_cnn_mlperf import _check


@pytest.mark.slow
def test_ic_on_the_icebreaker_rtl_equals_tflite_micro():
    _check("ic", "icebreaker-cnn")
