"""``tessera explore --check-rtl``: a point spot-checked on the RTL simulation.

The digits rows run through ``tessera.connect("sim", config=...)`` of the point's configuration
and through the emulator; outputs must be identical bit for bit, the work and byte counters
identical, and the total cycles within the model's tolerance.
"""

import json

import pytest

from tessera.cli import main
from tessera.explore.sweep import CYCLES_TOLERANCE, EXACT_COUNTERS

pytestmark = pytest.mark.slow


def test_check_rtl_spot_checks_a_point(tmp_path, capsys):
    status = main(["explore", "digits", "--board", "ulx3s-25f", "--rows", "4", "--cols", "4",
                   "--no-build", "--workers", "1", "--check-rtl", "--rtl-rows", "6",
                   "-o", str(tmp_path), "--json", "--no-plots"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    (record,) = json.loads(captured.out)["points"]
    check = record["rtl_check"]
    assert check["rows"] == 6 and check["ok"]
    assert check["outputs_identical"] and check["counters_identical"]
    for name in EXACT_COUNTERS:
        assert check["rtl_counters"][name] == check["emu_counters"][name], name
    assert check["rtl_counters"]["macs"] == 6 * (64 * 32 + 32 * 10)
    assert abs(check["cycles_rel_diff"]) <= CYCLES_TOLERANCE
    assert "ulx3s-25f 4x4 int8: RTL outputs identical, work and byte counters identical" \
        in captured.err
