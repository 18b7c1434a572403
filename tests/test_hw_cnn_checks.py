"""The CONV checks (``hw/conv_checks.py``) against the emulator's status for WINDOW + CONV.

Random windows (zero fields, pools with in_c != out_c, depthwise with and without a multiple of
in_c) and CONV fields around every buffer end, each kind: the status equals what
``Machine.execute`` answers for the program ``WINDOW; CONV`` (programs the emulator refuses as
undefined — an output over its input — are not compared). Then windows with fields at their
maxima and CONVs whose ranges end exactly at a buffer's end or one past it, at the iCEBreaker
preset's and a 32x4 configuration's depths (each size exact, capped sizes still refused), and the
shift-add multiplier the sizes are computed on.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw_cnn_helpers import set_window
from tessera.compiler.presets import get_preset
from tessera.hw.conv_checks import REMAINDER_CYCLES, WindowChecks
from tessera.hw.shift_add import ShiftAddMultiplier
from tessera.runtime.conv import Window, conv_groups, map_entries
from tessera.runtime.cycles import CycleModel
from tessera.runtime.errors import HazardError, ParameterError
from tessera.runtime.machine import ExecResult, Machine
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.isa import ConvKind
from tessera.spec.protocol import Status

CONFIG = AcceleratorConfig(rows=4, cols=2, act_depth=256, weight_depth=512, param_depth=64,
                           cnn=True)


def _cases(count):
    rng = np.random.default_rng(9)
    cases = []
    while len(cases) < count:
        small = lambda hi: int(rng.integers(0, hi)) if rng.random() < 0.06 else \
            int(rng.integers(1, hi))                               # noqa: E731
        in_c = small(9)
        out_c = [in_c, in_c * int(rng.integers(1, 4)), small(9)][int(rng.integers(0, 3))]
        window = isa.Window(small(9), small(9), in_c, small(9), small(9), out_c,
                            small(4), small(4), small(3), small(3), small(3), small(3),
                            int(rng.integers(0, 3)), int(rng.integers(0, 3)), -1)
        kind = ConvKind(int(rng.integers(0, 4)))
        ends = lambda depth: int(rng.choice([rng.integers(0, depth), depth - 1, depth - 8,
                                             depth - 40]))        # noqa: E731
        conv = isa.Conv(kind, max(0, ends(256)), max(0, ends(256)), max(0, ends(512)),
                        max(0, ends(64)))
        machine = Machine(CONFIG)
        try:
            # (an average pool with a pixel whose taps are all padding divides by zero in the
            # emulator: the status is what is compared here)
            with np.errstate(divide="ignore", invalid="ignore"):
                result = machine.execute(isa.encode(window) + isa.encode(conv), CycleModel())
        except HazardError:
            continue
        except ParameterError:           # the checks passed; the zero PARAM entries do not
            result = ExecResult()
        if result.status != Status.OK and result.offset == 0:
            continue                      # the WINDOW itself refused (a field out of range)
        cases.append((window, conv, result.status))
    return cases


def _statuses(config, cases, sizes=None):
    # The status of each (window, conv, _) a cycle after `ready` (REMAINDER_CYCLES + 1 cycles
    # after a WINDOW's load: the status is a register; and its sizes (taps, pixels, k_conv),
    # ready with `ready`, appended to `sizes`).
    dut = WindowChecks(config)
    seen = []

    async def bench(ctx):
        for window, conv, _status in cases:
            set_window(ctx, dut.window, window)
            for name in ("kind", "src", "dst", "w_addr", "param_addr"):
                ctx.set(getattr(dut.conv, name), int(getattr(conv, name)))
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            for _ in range(REMAINDER_CYCLES + 1):
                await ctx.tick()
            assert ctx.get(dut.ready)
            if sizes is not None:
                sizes.append(tuple(ctx.get(getattr(dut.sizes, name))
                                   for name in ("taps", "pixels", "k_conv")))
            await ctx.tick()
            status = ctx.get(dut.status)
            assert ctx.get(dut.bad) == (status != Status.OK)
            seen.append(status)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_statuses_are_the_emulators():
    cases = _cases(300)
    seen = _statuses(CONFIG, cases)
    want = [int(status) for _w, _c, status in cases]
    assert seen == want
    assert {Status.OK, Status.BAD_FIELD, Status.BAD_ADDRESS} <= set(want)


def _expected_status(config, window, conv):
    # Machine._conv's checks, in its order, with the emulator's own size rules (conv.py): a
    # CONV that passes them would run, which at these sizes the emulator would take minutes for.
    kind = ConvKind(conv.kind)
    pool = kind in (ConvKind.AVERAGE_POOL, ConvKind.MAX_POOL)
    if (pool and window.in_c != window.out_c) or \
            (kind == ConvKind.DEPTHWISE and window.out_c % window.in_c):
        return Status.BAD_FIELD
    groups, k = conv_groups(kind, Window.from_fields(vars(window)), config.cols)
    ranges = [(conv.src, map_entries(window.in_h * window.in_w, window.in_c, config.rows),
               config.act_depth),
              (conv.dst, map_entries(window.out_h * window.out_w, window.out_c, config.rows),
               config.act_depth)]
    if not pool:
        ranges += [(conv.w_addr, groups * k, config.weight_depth),
                   (conv.param_addr, window.out_c, config.param_depth)]
    bad = any(start + count > depth for start, count, depth in ranges)
    return Status.BAD_ADDRESS if bad else Status.OK


def _extreme_cases(config, count):
    # Windows with fields at their maxima (every product at its widest, most far past any
    # buffer) or at 1, and CONVs with one range ending exactly at its buffer's end or one past
    # it, the others at 0: each size must be exact, and capped sizes still refused.
    rng = np.random.default_rng(15)
    field = lambda hi: int(rng.choice([1, 1, 2, hi, hi - 1, rng.integers(1, 9),    # noqa: E731
                                       rng.integers(1, hi + 1)]))
    cases = []
    while len(cases) < count:
        in_c = field(4095)
        out_c = in_c * int(rng.integers(1, 3)) if rng.random() < 0.6 else field(4095)
        window = isa.Window(field(1023), field(1023), in_c, field(1023), field(1023),
                            min(out_c, 4095), field(31), field(31), 1, 1, 1, 1, 0, 0, 0)
        kind = ConvKind(int(rng.integers(0, 4)))
        groups, k = conv_groups(kind, Window.from_fields(vars(window)), config.cols)
        sizes = {"src": (map_entries(window.in_h * window.in_w, window.in_c, config.rows),
                         config.act_depth),
                 "dst": (map_entries(window.out_h * window.out_w, window.out_c, config.rows),
                         config.act_depth),
                 "w_addr": (groups * k, config.weight_depth),
                 "param_addr": (window.out_c, config.param_depth)}
        focus = list(sizes)[int(rng.integers(0, 4))]
        fields = {}
        for name, (size, depth) in sizes.items():
            end = depth - size + int(rng.integers(0, 2)) if name == focus else 0
            fields[name] = end if 0 <= end < 1 << 16 else int(rng.integers(0, 1 << 16))
        conv = isa.Conv(kind, fields["src"], fields["dst"], fields["w_addr"],
                        fields["param_addr"])
        cases.append((window, conv, _expected_status(config, window, conv)))
    return cases


@pytest.mark.parametrize("config", [
    get_preset("icebreaker-cnn").config,
    AcceleratorConfig(rows=32, cols=4, act_depth=65536, weight_depth=65536, param_depth=4096,
                      cnn=True),
], ids=["icebreaker-cnn", "32x4-64k"])
def test_sizes_are_exact_at_the_widest_fields(config):
    cases = _extreme_cases(config, 400)
    sizes = []
    seen = _statuses(config, cases, sizes)
    want = [int(status) for _w, _c, status in cases]
    assert seen == want
    # the sizes issued with a CONV to the command sequencer
    assert sizes == [(w.kernel_h * w.kernel_w, w.out_h * w.out_w,
                      w.kernel_h * w.kernel_w * w.in_c) for w, _c, _s in cases]
    assert want.count(Status.OK) > 40 and want.count(Status.BAD_ADDRESS) > 100


@pytest.mark.parametrize("a_width, b_width", [(5, 5), (18, 12), (24, 11), (1, 1)])
def test_shift_add_products(a_width, b_width):
    rng = np.random.default_rng(a_width * 100 + b_width)
    top_a, top_b = (1 << a_width) - 1, (1 << b_width) - 1
    pairs = [(top_a, top_b), (top_a, 0), (0, top_b), (1, top_b), (top_a, 1)] + \
        [(int(rng.integers(0, top_a + 1)), int(rng.integers(0, top_b + 1))) for _ in range(40)]
    dut = ShiftAddMultiplier(a_width, b_width)
    seen = []

    async def bench(ctx):
        for a, b in pairs:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.a, top_a)        # taken in the start cycle only
            ctx.set(dut.b, top_b)
            for _ in range(dut.cycles):
                await ctx.tick()
            seen.append(ctx.get(dut.product))
            await ctx.tick()             # held
            assert ctx.get(dut.product) == seen[-1]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert dut.cycles == (b_width + 1) // 2
    assert seen == [a * b for a, b in pairs]


@pytest.mark.parametrize("a_width, b_width, short_b_width", [(16, 12, 10), (17, 12, 10), (4, 5, 1)])
def test_shift_add_short_products(a_width, b_width, short_b_width):
    # short and full products alternate on one multiplier, each read on its own output after
    # exactly its cycles (the short one's b at most short_b_width bits)
    rng = np.random.default_rng(a_width * 100 + short_b_width)
    top_a, top_b, top_s = (1 << a_width) - 1, (1 << b_width) - 1, (1 << short_b_width) - 1
    cases = [(top_a, top_s, True), (top_a, top_b, False), (1, top_s, True), (top_a, 0, True),
             (0, top_b, False)]
    cases += [(int(rng.integers(0, top_a + 1)), int(rng.integers(0, top_s + 1)), True)
              for _ in range(20)]
    cases += [(int(rng.integers(0, top_a + 1)), int(rng.integers(0, top_b + 1)), False)
              for _ in range(20)]
    dut = ShiftAddMultiplier(a_width, b_width, short_b_width=short_b_width)
    seen = []

    async def bench(ctx):
        for a, b, short in cases:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.short, short)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.short, not short)   # taken in the start cycle only
            ctx.set(dut.b, top_b)
            for _ in range(dut.short_cycles if short else dut.cycles):
                await ctx.tick()
            seen.append(ctx.get(dut.short_product if short else dut.product))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert dut.short_cycles == (short_b_width + 1) // 2
    assert seen == [a * b for a, b, _short in cases]


def test_shift_add_short_width_is_checked():
    with pytest.raises(ValueError, match=r"^short_b_width must be a positive integer below "
                                         r"b_width \(12\), not 12$"):
        ShiftAddMultiplier(16, 12, short_b_width=12)
