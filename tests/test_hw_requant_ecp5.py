"""The requant units on ECP5 (partial products in MULT18X18D output registers) vs the generic ones.

Each unit elaborated for an ECP5 platform and the generic one (platform ``None``) run side by
side on Verilator (and Icarus where installed), the blocks by
:data:`tessera.hw.mac_ecp5.MULT18X18D_SIM_MODEL`, with the same inputs every cycle and a pipeline
enable that is low in about a quarter of the cycles: their results must be equal in every cycle,
and the results of the enabled cycles must equal the float32 / integer oracles of
``tests/hw_requant_vectors.py`` on its discriminating vectors.
The activation stage's ECP5 table (distributed RAM behind a registered index) runs beside the
generic one (synchronous block RAM read) in Amaranth's simulator the same way.
"""

import numpy as np
import pytest
from amaranth import Fragment, Module, Signal, signed
from amaranth.back import verilog
from amaranth.sim import Simulator
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from ecp5_side_by_side import pack_words, run_side_by_side
from hw_requant_vectors import (onnx_oracle, onnx_vectors, tflite_oracle, tflite_vectors,
                                write_lut)
from sim_helpers import simulators
from tessera.hw.activation import Activation, clamp_bounds
from tessera.hw.mac_ecp5 import registered_product
from tessera.hw.requant_onnx import OnnxRequant
from tessera.hw.requant_tflite import TfliteRequant


def _simulate(make_unit, ports, columns, tmp_path, simulator):
    """Run the ECP5 and the generic unit on ``columns``; return (ecp5, generic) per cycle.

    ``ports`` are ``(name, bits)`` of the unit's inputs, MSB first in each stimulus word;
    ``columns`` maps each name to one value per cycle.
    """
    ecp5 = verilog.convert(make_unit(), name="ecp5_unit", platform=ULX3S_85F_Platform())
    generic = verilog.convert(make_unit(), name="generic_unit")
    assert ecp5.count("MULT18X18D ") == 4
    assert "MULT18X18D" not in generic
    pairs = run_side_by_side(tmp_path, ecp5, generic, ports, pack_words(ports, columns),
                             "result", 16, simulator)
    return np.array(pairs).T


def _stall(rng, inputs, latency):
    """Spread ``inputs`` over cycles with ``en`` low in ~25% of them; flush with ``latency``."""
    count = len(next(iter(inputs.values())))
    en = []
    while sum(en) < count + latency:
        en.append(int(rng.random() >= 0.25))
    en = np.array(en)
    index = np.cumsum(en) - 1                       # the element an enabled cycle presents
    columns = {"en": en}
    for name, values in inputs.items():
        padded = np.concatenate([values, np.zeros(latency, dtype=values.dtype)])
        columns[name] = padded[np.clip(index, 0, None)]
    return columns


def _check(ecp5, generic, en, expected, latency):
    np.testing.assert_array_equal(ecp5, generic)
    # After the j-th enabled edge the result belongs to the element of enabled cycle j - L + 1.
    after_enabled = ecp5[en == 1]
    np.testing.assert_array_equal(after_enabled[latency - 1:latency - 1 + len(expected)],
                                  expected)


@pytest.mark.parametrize("simulator", simulators())
def test_onnx_on_mult18x18d_equals_generic_and_float32(simulator, tmp_path):
    rng = np.random.default_rng(20261129)
    a, bits = onnx_vectors(rng, 1000)
    columns = _stall(rng, {"a": a, "multiplier": bits}, OnnxRequant.latency)
    columns["valid"] = np.ones_like(columns["en"])
    ecp5, generic = _simulate(OnnxRequant, [("en", 1), ("valid", 1), ("a", 32),
                                            ("multiplier", 32)], columns, tmp_path,
                                 simulator)
    _check(ecp5, generic, columns["en"], onnx_oracle(a, bits), OnnxRequant.latency)


@pytest.mark.parametrize("simulator", simulators())
def test_tflite_on_mult18x18d_equals_generic_and_integer_formula(simulator, tmp_path):
    rng = np.random.default_rng(20261130)
    a, m0, shift = tflite_vectors(rng, 1000)
    columns = _stall(rng, {"a": a, "multiplier": m0, "shift": shift}, TfliteRequant.latency)
    ecp5, generic = _simulate(TfliteRequant, [("en", 1), ("a", 32), ("multiplier", 32),
                                              ("shift", 8)], columns, tmp_path,
                                 simulator)
    _check(ecp5, generic, columns["en"], tflite_oracle(a, m0, shift), TfliteRequant.latency)


@pytest.mark.parametrize("a_shape,message", [
    ((19, True), r"^p: operand a of 19 signed bits does not fit a MULT18X18D port \(18 bits "
                 r"signed, 17 unsigned\); split the product$"),
    ((18, False), r"^p: operand a of 18 unsigned bits does not fit a MULT18X18D port \(18 bits "
                  r"signed, 17 unsigned\); split the product$"),
])
def test_registered_product_rejects_wide_operands(a_shape, message):
    width, is_signed = a_shape
    a = Signal(signed(width) if is_signed else width)
    m = Module()
    m._MustUse__silence = True   # the module is only the place the product would be built in
    with pytest.raises(ValueError, match=message):
        registered_product(m, "p", a, Signal(8), Signal())


def _run_activation(fragment, dut, table, columns):
    """Load ``table``, then drive ``columns`` (one value per cycle); return ``result`` per cycle."""
    results = []

    async def testbench(ctx):
        await write_lut(ctx, dut, table)
        for i in range(len(columns["en"])):
            for name, values in columns.items():
                ctx.set(getattr(dut, name), int(values[i]))
            await ctx.tick()
            results.append(ctx.get(dut.result))

    sim = Simulator(fragment)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(results)


def test_activation_lut_in_distributed_ram_equals_block_ram_and_numpy():
    rng = np.random.default_rng(20261131)
    n = 1500
    value = rng.integers(-400, 400, n)
    zero_point = rng.integers(-128, 128, n)
    lo = rng.integers(-128, 0, n)
    hi = rng.integers(0, 128, n)
    use_lut = rng.integers(0, 2, n)
    table = rng.integers(-128, 128, 256).astype(np.int8)
    expected = np.clip(value + zero_point, lo, hi)
    expected = np.where(use_lut == 1, table[expected + 128], expected)
    inputs = {"value": value, "zero_point": zero_point, "hi": hi, "use_lut": use_lut}
    for name in ("lo_bound", "hi_bound", "lo_value"):
        inputs[name] = np.array([clamp_bounds(int(z), int(a), int(b))[name]
                                 for z, a, b in zip(zero_point, lo, hi)])
    columns = _stall(rng, inputs, Activation.latency)

    ecp5_dut, generic_dut = Activation(lut=True), Activation(lut=True)
    ecp5_fragment = Fragment.get(ecp5_dut, ULX3S_85F_Platform())
    # The ECP5 table is read asynchronously (distributed RAM), the generic one synchronously.
    for fragment, domain in ((ecp5_fragment, "comb"), (Fragment.get(generic_dut, None), "sync")):
        (table_fragment, name, _), = fragment.subfragments
        assert name == "lut" and [port._domain for port in table_fragment._read_ports] == [domain]
    ecp5 = _run_activation(ecp5_fragment, ecp5_dut, table, columns)
    generic = _run_activation(generic_dut, generic_dut, table, columns)
    _check(ecp5, generic, columns["en"], expected, Activation.latency)
