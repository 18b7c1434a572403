"""MacArray on ECP5 (hand-instantiated MULT18X18D) against the generic array and NumPy.

The array elaborated for an ECP5 platform (hw/mac_ecp5.py) and the generic one (platform
``None``) are simulated side by side on Verilator (and Icarus where installed), the MULT18X18D
blocks by :data:`tessera.hw.mac_ecp5.MULT18X18D_SIM_MODEL`, with the same inputs every cycle:
their ``head`` outputs must be equal in every cycle, and the tiles they drain must equal NumPy's
``a.T @ w`` (extreme operands, long K, K split without clear, clear between tiles).
"""

from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth_boards.ulx3s import ULX3S_12F_Platform, ULX3S_85F_Platform

from ecp5_side_by_side import run_side_by_side
from sim_helpers import simulators
from tessera.hw.array import MacArray
from tessera.hw.boards import get_board
from tessera.hw.build import estimate_resources
from tessera.compiler.presets import CNN_PRESETS
from tessera.hw.mac_ecp5 import (SPARE_MULTIPLIERS, elaborate_mac_array, fabric_rows, is_ecp5,
                                 requant_multipliers)
from tessera.spec import AcceleratorConfig
from tessera.spec.config import operand_range

_CONTROLS = ("step", "clear", "shadow_load", "shift_row", "shift_col")


def _wrap(values, bits):
    values = np.asarray(values, dtype=np.int64) & ((1 << bits) - 1)
    return np.where(values >= 1 << (bits - 1), values - (1 << bits), values)


class Stimulus:
    """Per-cycle inputs of both arrays and the ``head`` values NumPy expects."""

    def __init__(self, config):
        self.config = config
        self.controls = _CONTROLS + (("maximum",) if config.cnn else ())
        self.cycles = []
        self.expected = {}  # cycle -> head value after its clock edge

    def idle(self, count=1):
        for _ in range(count):
            self.cycle()

    def cycle(self, a=None, w=None, **controls):
        rows, cols = self.config.rows, self.config.cols
        self.cycles.append((np.zeros(rows, np.int64) if a is None else a,
                            np.zeros(cols, np.int64) if w is None else w,
                            {name: int(controls.get(name, 0)) for name in self.controls}))

    def tile(self, a, w, *, clear, maximum=False):
        """Step through ``a`` (k x rows) and ``w`` (k x cols); return the last step's cycle."""
        for i in range(len(a)):
            self.cycle(a[i], w[i], step=1, clear=clear and i == 0, maximum=maximum)
        return len(self.cycles) - 1

    def drain(self, last_step, expected, columns=None):
        """Load the shadow in ``last_step + 3`` and shift every element out through ``head``."""
        rows, cols = self.config.rows, self.config.cols
        while len(self.cycles) < last_step + 3:
            self.idle()
        load = len(self.cycles)
        self.cycle(shadow_load=1)
        order = [(r, c) for c in range(cols) for r in range(rows)]
        for i, (r, c) in enumerate(order):
            if columns is None or c < columns:
                self.expected[load + i] = int(expected[r, c])
            if i + 1 < len(order):
                self.cycle(**{"shift_col" if r == rows - 1 else "shift_row": 1})

    def pack(self):
        """Return the cycles as hex words: controls, then w, then a (MSB first)."""
        config = self.config
        words = []
        for a, w, controls in self.cycles:
            word = 0
            for name in self.controls:
                word = (word << 1) | controls[name]
            for value in reversed(w):
                word = (word << config.weight_bits) | (int(value) & ((1 << config.weight_bits) - 1))
            for value in reversed(a):
                word = (word << config.input_bits) | (int(value) & ((1 << config.input_bits) - 1))
            words.append(f"{word:x}")
        return words


def _simulate(config, stimulus, tmp_path, simulator):
    """Run both arrays on ``stimulus``; return the (ecp5, generic) head of every cycle."""
    platform = ULX3S_85F_Platform()
    assert is_ecp5(platform) and not is_ecp5(None)
    ecp5 = verilog.convert(MacArray(config), name="ecp5_unit", platform=platform)
    generic = verilog.convert(MacArray(config), name="generic_unit")
    assert "MULT18X18D" in ecp5 and "MULT18X18D" not in generic
    ports = [(name, 1) for name in stimulus.controls] + [
        ("w", config.cols * config.weight_bits), ("a", config.rows * config.input_bits)]
    return run_side_by_side(tmp_path, ecp5, generic, ports, stimulus.pack(), "head",
                            config.acc_bits, simulator)


@pytest.mark.parametrize("simulator", simulators())
@pytest.mark.parametrize("rows,cols,input_bits,weight_bits", [
    (2, 3, 8, 8), (3, 2, 16, 16), (2, 2, 4, 8)])
def test_ecp5_array_equals_generic_and_numpy(rows, cols, input_bits, weight_bits, simulator,
                                             tmp_path):
    config = AcceleratorConfig(rows=rows, cols=cols, input_bits=input_bits,
                               weight_bits=weight_bits)
    a_lo, a_hi = operand_range(input_bits)
    w_lo, w_hi = operand_range(weight_bits)
    rng = np.random.default_rng(rows * 100 + input_bits * 10 + weight_bits)
    stim = Stimulus(config)
    stim.idle(2)

    def operands(k, extreme=False):
        a = rng.integers(a_lo, a_hi + 1, size=(k, rows))
        w = rng.integers(w_lo, w_hi + 1, size=(k, cols))
        if extreme:   # the largest product, over and over: the sums grow to their limit
            a[:, 0], w[:, 0] = a_lo, w_lo
            a[:, -1], w[:, -1] = a_hi, w_lo
        return a, w

    # Tiles: clear then a drain; a long K of extreme operands; a K split (second part without
    # clear, directly after the first); a one-step tile; back-to-back drains.
    a1, w1 = operands(5, extreme=True)
    stim.drain(stim.tile(a1, w1, clear=True), a1.T @ w1)
    a2, w2 = operands(300, extreme=True)
    stim.idle(2)
    stim.drain(stim.tile(a2, w2, clear=True), _wrap(a2.T @ w2, config.acc_bits))
    a3, w3 = operands(7)
    a4, w4 = operands(4)
    stim.idle(2)
    stim.tile(a3, w3, clear=True)
    stim.drain(stim.tile(a4, w4, clear=False), a3.T @ w3 + a4.T @ w4)
    a5, w5 = operands(1, extreme=True)
    stim.idle(2)
    stim.drain(stim.tile(a5, w5, clear=True), a5.T @ w5)

    # Random cycles: every control at random (a clear step never right after a step).
    last_step = True
    for _ in range(400):
        a, w = operands(1)
        step = rng.random() < 0.7
        clear = step and not last_step and rng.random() < 0.5
        stim.cycle(a[0], w[0], step=step, clear=clear, shadow_load=rng.random() < 0.15,
                   shift_row=rng.random() < 0.4, shift_col=rng.random() < 0.3)
        last_step = step

    heads = _simulate(config, stim, tmp_path, simulator)
    ecp5, generic = np.array(heads).T
    np.testing.assert_array_equal(ecp5, generic)
    cycles = sorted(stim.expected)
    np.testing.assert_array_equal(ecp5[cycles], [stim.expected[c] for c in cycles])


def test_operand_wider_than_the_block_is_rejected():
    array = SimpleNamespace(config=SimpleNamespace(rows=1, cols=1, input_bits=20, weight_bits=8))
    with pytest.raises(ValueError, match=r"^input_bits=20 does not fit a MULT18X18D port "
                                         r"\(18 bits\); use at most 18-bit operands on ECP5$"):
        elaborate_mac_array(array, ULX3S_85F_Platform())


@pytest.mark.parametrize("simulator", simulators()[:1])
def test_ecp5_array_keeps_the_max_pool_maxima(simulator, tmp_path):
    # ISA version 3's max pool (MacArray `maximum`): column 0 reads out each row's largest
    # activation (-128 alone, 127 among others) as the generic array's does; sums before and
    # after are untouched (a max pool drains column 0 only, so the others are not compared).
    config = AcceleratorConfig(rows=4, cols=2, cnn=True)
    rng = np.random.default_rng(9)
    stim = Stimulus(config)
    stim.idle(2)
    for k, maximum in ((5, False), (9, True), (1, True), (6, False), (3, True), (4, False)):
        a = rng.integers(-128, 128, size=(k, config.rows))
        w = rng.integers(-128, 128, size=(k, config.cols))
        if k == 1:
            a[:] = -128
        if k == 9:
            a[4, 1] = 127
        expected = np.repeat(a.max(axis=0)[:, None], config.cols, axis=1) if maximum \
            else a.T @ w
        stim.drain(stim.tile(a, w, clear=True, maximum=maximum), expected,
                   columns=1 if maximum else None)
        stim.idle(2)
    heads = _simulate(config, stim, tmp_path, simulator)
    ecp5, generic = np.array(heads).T
    cycles = sorted(stim.expected)
    np.testing.assert_array_equal(ecp5[cycles], [stim.expected[c] for c in cycles])
    np.testing.assert_array_equal(ecp5[cycles], generic[cycles])


@pytest.mark.parametrize("simulator", simulators()[:1])
def test_ecp5_array_shows_drain_lanes_rows(simulator, tmp_path):
    # drain_lanes = 2 (as ulx3s-85f-cnn's 8): `heads` shows the shadow's first two rows of
    # column 0 and a row shift moves them by two; every cycle of random steps, clears, loads
    # and shifts equals the generic array.
    config = AcceleratorConfig(rows=4, cols=2, cnn=True, drain_lanes=2)
    stim = Stimulus(config)
    stim.idle(2)
    _random_cycles(stim, np.random.default_rng(11), 300)
    ecp5_heads, generic_heads = _heads(stim, ULX3S_85F_Platform(), tmp_path, simulator)
    assert len(set(generic_heads)) > 50            # the read-out moves
    assert list(ecp5_heads) == list(generic_heads)


def _random_cycles(stim, rng, count):
    """Add ``count`` cycles of random operands and controls (no clear right after a step)."""
    config, last_step = stim.config, True
    for _ in range(count):
        a = rng.integers(-128, 128, size=config.rows)
        w = rng.integers(-128, 128, size=config.cols)
        step = rng.random() < 0.7
        clear = step and not last_step and rng.random() < 0.5
        stim.cycle(a, w, step=step, clear=clear, shadow_load=rng.random() < 0.15,
                   shift_row=rng.random() < 0.4, shift_col=rng.random() < 0.3)
        last_step = step


def _heads(stim, platform, tmp_path, simulator, blocks=None):
    """Return ``heads`` of the array on ``platform`` and of the generic one, every cycle."""
    config = stim.config
    ecp5 = verilog.convert(MacArray(config), name="ecp5_unit", platform=platform)
    generic = verilog.convert(MacArray(config), name="generic_unit")
    if blocks is not None:
        assert ecp5.count("MULT18X18D #(") == blocks
    ports = [(name, 1) for name in stim.controls] + [
        ("w", config.cols * config.weight_bits), ("a", config.rows * config.input_bits)]
    heads = run_side_by_side(tmp_path, ecp5, generic, ports, stim.pack(), "heads",
                             2 * config.acc_bits, simulator)
    return np.array(heads, dtype=object).T


def test_fabric_rows_leave_the_requant_units_their_blocks():
    # ulx3s-85f-cnn (16x8): 128 MACs + 8 drain lanes' tflite requant units of 4 blocks (the
    # ADD borrows them) are 160 of the LFE5U-85F's 156: the last row lane (8 MACs) multiplies
    # in logic, 4 blocks stay spare.
    config = CNN_PRESETS["ulx3s-85f-cnn"].config
    assert requant_multipliers(config) == 32
    rows = fabric_rows(config, 156)
    assert rows == 1
    assert (config.rows - rows) * config.cols + 32 + SPARE_MULTIPLIERS <= 156
    assert (config.rows - rows + 1) * config.cols + 32 + SPARE_MULTIPLIERS > 156
    assert fabric_rows(CNN_PRESETS["orangecrab-25f-cnn"].config, 28) == 0    # 16 + 8 fit
    # the pre-build estimate (tessera build's check) counts what the blocks hold
    assert estimate_resources(get_board("ulx3s-85f"), config)["dsp"] == \
        (config.rows - rows) * config.cols + 32
    dense = AcceleratorConfig(rows=16, cols=16)                 # dense: never, even too large
    assert requant_multipliers(dense) == 4 * len(dense.requant_modes)
    assert fabric_rows(dense, 156) == 0


@pytest.mark.parametrize("simulator", simulators()[:1])
def test_ecp5_array_with_rows_in_logic_equals_generic(simulator, tmp_path):
    # An 8x4 cnn array with two drain lanes on the LFE5U-12F (28 blocks): 32 MACs + 8 for the
    # requant units, so 4 of its 8 rows multiply in logic; extreme and random operands, random
    # controls: `heads` (the rows a drain takes, moved by the shifts) equals the generic
    # array's in every cycle.
    config = AcceleratorConfig(rows=8, cols=4, cnn=True, drain_lanes=2, requant_modes=("tflite",))
    assert fabric_rows(config, 28) == 4
    rng = np.random.default_rng(12)
    stim = Stimulus(config)
    stim.idle(2)
    a, w = np.full((40, 8), -128), np.full((40, 4), -128)
    a[:, 1::2], w[:, 1::2] = 127, 127                           # sums to their extremes
    last = stim.tile(a, w, clear=True)
    stim.idle(2)
    stim.cycle(shadow_load=1)                                   # in last + 3, as drain()
    assert len(stim.cycles) == last + 4
    sums, pairs = a.T @ w, {}
    for c in range(config.cols):                                # two rows of a column a cycle
        for r in range(0, config.rows, 2):
            pairs[len(stim.cycles) - 1] = (sums[r, c], sums[r + 1, c])
            stim.cycle(**{"shift_col" if r == config.rows - 2 else "shift_row": 1})
    _random_cycles(stim, rng, 400)
    ecp5_heads, generic_heads = _heads(stim, ULX3S_12F_Platform(), tmp_path, simulator,
                                       blocks=4 * config.cols)
    assert len(set(generic_heads)) > 50
    assert list(ecp5_heads) == list(generic_heads)
    bits = config.acc_bits
    for cycle, (low, high) in pairs.items():           # the extreme tile, read through heads
        assert _wrap([ecp5_heads[cycle] & ((1 << bits) - 1), ecp5_heads[cycle] >> bits],
                     bits).tolist() == [low, high]
