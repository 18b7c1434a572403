"""The CONV checks (``hw/conv_checks.py``) against the emulator's status for WINDOW + CONV.

Random windows (zero fields, pools with in_c != out_c, depthwise with and without a multiple of
in_c) and CONV fields around every buffer end, each kind: the status equals what
``Machine.execute`` answers for the program ``WINDOW; CONV`` (programs the emulator refuses as
undefined — an output over its input — are not compared).
"""

import numpy as np
from amaranth.sim import Simulator

from hw_cnn_helpers import set_window
from tessera.hw.conv_checks import REMAINDER_CYCLES, WindowChecks
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


def test_statuses_are_the_emulators():
    cases = _cases(300)
    dut = WindowChecks(CONFIG)
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
            seen.append(ctx.get(dut.status))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = [int(status) for _w, _c, status in cases]
    assert seen == want
    assert {Status.OK, Status.BAD_FIELD, Status.BAD_ADDRESS} <= set(want)
