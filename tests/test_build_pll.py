"""PLL divider search (hw/clocking.py) checked against IceStorm's icepll and Trellis' ecppll."""

import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from tessera.hw.clocking import ecp5_pll_params, ice40_pll_params


def _tool(name):
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is part of tessera-fpga[fpga] (YoWASP) and must be installed"
    return found


@pytest.mark.parametrize("fout", [16, 24, 30, 33, 42, 48, 60, 100])
def test_ice40_matches_icepll(fout, tmp_path):
    out = subprocess.run([_tool("yowasp-icepll"), "-i", "12", "-o", str(fout)], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    fields = {k: int(v) for k, v in re.findall(r"^(DIVR|DIVF|DIVQ|FILTER_RANGE):\s+(\d+)", out,
                                               re.M)}
    achieved = float(re.search(r"([\d.]+) MHz \(achieved\)", out).group(1))
    p = ice40_pll_params(12, fout)
    assert (p.divr, p.divf, p.divq, p.filter_range) == \
        (fields["DIVR"], fields["DIVF"], fields["DIVQ"], fields["FILTER_RANGE"])
    assert float(p.fout_mhz) == pytest.approx(achieved, abs=1e-3)


@pytest.mark.parametrize("fin, fout", [(25, 100), (25, 50), (25, 75), (25, 125), (48, 100),
                                       (48, 64), (25, 66.67)])
def test_ecp5_matches_ecppll(fin, fout, tmp_path):
    out = subprocess.run([_tool("yowasp-ecppll"), "-i", str(fin), "-o", str(fout)],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    refclk = int(re.search(r"Refclk divisor: (\d+)", out).group(1))
    feedback = int(re.search(r"Feedback divisor: (\d+)", out).group(1))
    output = int(re.search(r"clkout0 divisor: (\d+)", out).group(1))
    p = ecp5_pll_params(fin, fout)
    assert (p.clki_div, p.clkfb_div, p.clkop_div) == (refclk, feedback, output)
    assert 400 <= p.fvco_mhz <= 800


def test_exact_fractions():
    p = ecp5_pll_params(48, 100)
    assert p.fout_mhz == Fraction(100)
    assert ice40_pll_params(12, 30).fout_mhz == Fraction(30)


def test_out_of_range_messages():
    with pytest.raises(ValueError) as exc:
        ice40_pll_params(12, 300)
    assert str(exc.value) == "iCE40 PLL output must be 16 to 275 MHz, not 300 MHz"
    with pytest.raises(ValueError) as exc:
        ecp5_pll_params(25, 500)
    assert str(exc.value) == "ECP5 PLL output must be 10 to 400 MHz, not 500 MHz"
