# amaranth: UnusedElaboratable=no

# (The line above: the port-width test builds components only to inspect their signatures.)
"""Core at operand widths other than 8: 4-bit, mixed 4/8 and 8/4, 16-bit with 48-bit accumulators.

The same bench as ``test_hw_core_gemm.py`` (``hw_core_helpers``): entries packed by
``pack_operands`` through the host write port, drained tiles read back through the host read
port and unpacked, every output compared bit for bit with ``tessera.numerics`` at the
configuration's widths, and the cycle model checked. The operands include runs of the most
negative values (``-8 * -8`` for int4, ``-32768 * -32768`` for int16) over long K, and the
``dyadic`` cases put the requant results on exact ties.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hw_core_helpers import Command, CoreBench, entries_from, entry_values, run_core

from tessera.hw.array import MacArray
from tessera.hw.core import Core, write_width
from tessera.spec import AcceleratorConfig, isa


#: name -> configuration fields (built inside the tests).
CONFIGS = {
    "2x4-int4": dict(rows=2, cols=4, input_bits=4, weight_bits=4),
    "3x4-int4-onnx": dict(rows=3, cols=4, input_bits=4, weight_bits=4, requant_modes=("onnx",)),
    "3x5-a4w8-tflite": dict(rows=3, cols=5, input_bits=4, weight_bits=8,
                            requant_modes=("tflite",)),
    "2x3-a8w4": dict(rows=2, cols=3, input_bits=8, weight_bits=4),
    "2x4-int4-iterative3": dict(rows=2, cols=4, input_bits=4, weight_bits=4,
                                requant_modes=("onnx",), requant_cycles=3),
    # 16-bit operands: 48-bit accumulators (mode onnx), and 16x8 with 32-bit ones.
    "2x3-int16-acc48": dict(rows=2, cols=3, input_bits=16, weight_bits=16),
    "3x2-a16w8-tflite": dict(rows=3, cols=2, input_bits=16, weight_bits=8,
                             requant_modes=("tflite",)),
    "2x2-int16-acc48-iterative4": dict(rows=2, cols=2, input_bits=16, weight_bits=16,
                                       requant_cycles=4),
}


def _config(name):
    return AcceleratorConfig(act_depth=128, weight_depth=64, param_depth=16, **CONFIGS[name])


def _build_tiles(config):
    out_lo, out_hi = -(1 << (config.output_bits - 1)), (1 << (config.output_bits - 1)) - 1

    def build(s):
        s.gemm(0, 0, 40, out_addr=64, param_addr=0)                        # long K, extremes
        s.gemm(8, 3, 20, out_addr=72, param_addr=5, zero_point=-1, lo=out_lo + 2,
               hi=out_hi - 1)
        s.gemm(40, 40, 2, out_addr=80, param_addr=1, zero_point=out_lo // 2, lo=0,
               lut=config.lut)                                              # relu, zy < 0
        s.gemm(0, 0, 10, clear=True, drain=False)                          # K split
        s.gemm(10, 10, 7, clear=False, out_addr=88, param_addr=3, m_rows=config.rows - 1 or 1,
               n_cols=config.cols - 1)
        s.gemm(2, 2, 1, out_addr=96, m_rows=1, n_cols=1, param_addr=15, zero_point=out_hi)
    return build


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_tiles_at_widths(name):
    config = _config(name)
    results = run_core(config, _build_tiles(config), seed=11, extremes=3)
    # The outputs must cover the range: saturated at both ends somewhere, not all one value.
    values = np.concatenate(list(results["scenario"].expected.values()))
    out_lo, out_hi = -(1 << (config.output_bits - 1)), (1 << (config.output_bits - 1)) - 1
    assert values.min() == out_lo and values.max() == out_hi
    if config.acc_bits == 48:   # the accumulators left the int32 range (long runs of -2^15^2)
        assert results["scenario"].max_abs_acc >= 1 << 33


@pytest.mark.parametrize("name", ["2x4-int4", "3x5-a4w8-tflite", "2x3-int16-acc48"])
def test_ties_at_widths(name):
    # Power-of-two scales: the requant results land on exact halves (onnx: ties to even,
    # tflite: away from zero), so a wrong tie rule shows.
    config = _config(name)

    def build(s):
        for i in range(3):
            s.gemm(4 * i, 8 * i, 3 + i, out_addr=64 + 8 * i, param_addr=i * config.cols,
                   tie=True)

    results = run_core(config, build, seed=12, dyadic=True, k_total=48)
    assert results["scenario"].ties >= 3 * config.cols


def test_int4_extreme_products_accumulate_exactly():
    # Every step multiplies -8 by -8 (= 64) or by 7 (= -56): acc = 320 or -280 after five
    # steps. With M = 1/64 and the biases below the results are exact halves or integers:
    # (320 + 32) / 64 = 5.5 -> 6 and (320 - 352) / 64 = -0.5 -> 0 (ties to even),
    # (-280 - 96) / 64 = -5.875 -> -6, (320 - 416) / 64 = -1.5 -> -2.
    config = _config("2x4-int4")
    rows, cols = config.rows, config.cols
    dut = Core(config)
    k = 5
    act = np.full((k, rows), -8, dtype=np.int8)
    wgt = np.full((k, cols), -8, dtype=np.int8)
    wgt[:, 1] = 7
    multiplier = int(np.float32(1 / 64).view(np.uint32))
    biases = [32, -96, -352, -416]
    got = {}

    async def testbench(ctx):
        bench = CoreBench(ctx, dut)
        await bench.write(isa.Buffer.ACT, 0, entries_from(act, 4))
        await bench.write(isa.Buffer.WGT, 0, entries_from(wgt, 4))
        await bench.write(isa.Buffer.PARAM, 0, [
            isa.PARAM_LAYOUT.pack(bias=b, multiplier=multiplier, shift=0) for b in biases])
        await bench.run([Command(a_addr=0, w_addr=0, k=k, out_addr=20, m_rows=rows,
                                 n_cols=cols, lo=-8, hi=7)])
        got["act"] = await bench.read(20, cols)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for c, want in enumerate([6, -6, 0, -2]):
        np.testing.assert_array_equal(entry_values(got["act"][c], rows, 4), [want] * rows)


def test_port_widths_follow_the_packing():
    # Entries are whole bytes on the host ports; the memories hold exactly rows*bits.
    config = _config("3x4-int4-onnx")          # 3 rows of 4 bits: 12 bits in 2 bytes
    core = Core(config)
    assert config.act_entry_bytes == 2 and config.weight_entry_bytes == 2
    assert write_width(config) == 72           # the PARAM entry is the widest
    assert len(core.read.data) == 16
    array = MacArray(_config("3x5-a4w8-tflite"))
    assert array.signature.members["a"].shape.elem_shape.width == 4
    assert array.signature.members["w"].shape.elem_shape.width == 8
    wide = AcceleratorConfig(rows=8, cols=16, input_bits=4, weight_bits=8)
    assert write_width(wide) == 128 and len(Core(wide).read.data) == 32
