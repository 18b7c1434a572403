"""The onnx requant's leading-zero normaliser: level decisions read off a two's complement ``a``.

:func:`~tessera.hw.requant_onnx.magnitude_decisions` forms the first levels' decisions of
:func:`~tessera.hw.requant_onnx.normalise_int` on ``|a|`` without the negation; here both
forms (and a Python reference) must agree on every power-of-two boundary of both signs.
"""

import pytest
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.sim import Simulator

from tessera.hw.requant_onnx import magnitude_decisions, normalise_int


def _boundaries(n):
    values = {0, 1, -1, (1 << (n - 1)) - 1, -(1 << (n - 1)), -(1 << (n - 1)) + 1}
    for k in range(n - 1):
        for d in (-1, 0, 1):
            for sign in (1, -1):
                v = sign * ((1 << k) + d)
                if -(1 << (n - 1)) <= v < 1 << (n - 1):
                    values.add(v)
    return sorted(values)


@pytest.mark.parametrize("n, count", [(32, 2), (32, 3), (48, 3)])
def test_decisions_from_signed_equal_the_zero_tests(n, count):
    a = Signal(signed(n))
    m = Module()
    mag = Signal(n)
    m.d.comb += mag.eq(Mux(a < 0, -a, a))
    own, own_lz = normalise_int(m, mag, levels=slice(0, count))
    early, early_lz = normalise_int(m, mag, levels=slice(0, count),
                                    decisions=magnitude_decisions(a, count))
    values = _boundaries(n)
    mismatches = []

    async def bench(ctx):
        for v in values:
            ctx.set(a, v)
            got = (ctx.get(early), ctx.get(early_lz))
            want = (ctx.get(own), ctx.get(own_lz))
            # Python reference: shift out the top `step` bits while they are zero.
            x, lz = abs(v), 0
            for step in [1 << (j) for j in reversed(range((n - 1).bit_length()))][:count]:
                if x >> (n - step) == 0:
                    x, lz = x << step, lz | step
            ref_lz = lz >> ((n - 1).bit_length() - count)
            if got != want or got != (x, ref_lz):
                mismatches.append((v, got, want, (x, ref_lz)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert len(values) > 5 * (n - 1)
    assert not mismatches, mismatches[:5]
