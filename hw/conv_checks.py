"""The checks of a ``CONV`` against the window state (ISA version 3, docs/isa.md "Checks").

A ``CONV`` earns ``BAD_FIELD`` when the window has a zero size, kernel, stride or dilation (e.g.
no ``WINDOW`` since reset), when a pool's ``in_c`` differs from its ``out_c``, or when a depthwise
convolution's ``out_c`` is not a multiple of its ``in_c``; then ``BAD_ADDRESS`` when its input
map (``ceil(in_h*in_w/rows)*in_c`` entries from ``src``), its output map
(``ceil(out_h*out_w/rows)*out_c`` from ``dst``), its weights (``groups*K`` from ``w_addr``,
kinds 0 and 1) or its parameters (``out_c`` from ``param_addr``, kinds 0 and 1) leave their
buffers. Everything that depends on the window alone is computed once per ``WINDOW``
(:class:`WindowChecks`, ``load``): the products, in two rounds on five
:class:`~tessera.hw.shift_add.ShiftAddMultiplier` (no multiplier cell: the iCE40UP5K's all serve
the MAC array), and ``out_c mod in_c`` by a restoring divider of one bit per cycle, done within
the next instruction's 16-cycle fetch (``ready``). The counts are compared capped just above
their buffer's depth, so the per-``CONV`` adders are as narrow as the addresses; the range ends
and then their compares are registered (the decoder takes the status a cycle after its step 3,
at its outputs).
``rows`` and ``cols`` must be powers of two (the tile and group counts are shifts).
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.isa import ConvKind
from tessera.spec.protocol import Status

from .conv_commands import conv_request
from .shift_add import ShiftAddMultiplier
from .window import window_sizes, window_state

__all__ = ["WindowChecks", "REMAINDER_CYCLES"]

#: Cycles of ``out_c mod in_c`` after ``load`` (12-bit channel counts, one bit per cycle).
REMAINDER_CYCLES = 12


def _log2(value, what):
    if value & (value - 1):
        raise ValueError(f"The CONV checks need a power-of-two {what}, not {value}")
    return value.bit_length() - 1


def _capped(count, depth):
    # `count`, or 2^n > depth if it is larger: `start + count > depth` is unchanged for any
    # start, and the per-CONV adders are n + 1 bits wide instead of the product's width.
    n = depth.bit_length()
    return Mux(count[n:].any(), 1 << n, count[:n])


class WindowChecks(wiring.Component):
    """Window-derived sizes and the status of a ``CONV`` against them.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    window : In(window_state())
        The window state; ``load`` in the cycle after it changes.
    load : In(1)
        Compute the window's sizes (ready :data:`REMAINDER_CYCLES` + 1 cycles later).
    ready : Out(1)
        The sizes belong to the window.
    conv : In(conv_request())
        A ``CONV``'s fields.
    status : Out(8)
        ``Status.OK``, ``BAD_FIELD`` or ``BAD_ADDRESS`` (a register) for ``conv`` held since
        two cycles before: valid from the cycle after ``ready`` on.
    bad : Out(1)
        ``status != Status.OK`` (a register).
    sizes : Out(window_sizes())
        The window's ``taps``, ``pixels`` and ``k_conv`` (valid while ``ready``), for the
        ``CONV`` issue.
    """

    def __init__(self, config):
        self._config = config
        self._row_shift = _log2(config.rows, "row count")
        self._col_shift = _log2(config.cols, "column count")
        super().__init__({
            "window": In(window_state()),
            "load": In(1),
            "ready": Out(1),
            "conv": In(conv_request()),
            "status": Out(8),
            "bad": Out(1),
            "sizes": Out(window_sizes()),
        })

    def elaborate(self, platform):
        cfg = self._config
        w = self.window
        m = Module()

        # -- per window: sizes (registered) and out_c mod in_c (sequential) ----------------------
        # The products run on shift-add multipliers in two rounds each (no multiplier cell),
        # round 1 from `load`, round 2 from the cycle its operand (round 1's product) is held:
        # kh*kw and then out_c*k (dw_weights); in_c*groups and then that times k (conv_weights);
        # in_h*in_w and out_h*out_w, then the tile counts times in_c and out_c (src/dst_count);
        # in round 2 also in_c*k (k_conv, for the command sequencer). Products whose multiplier
        # has at most 10 bits (in_w, out_w in round 1; k in conv's round 2) are short (5
        # cycles), so that all are final a cycle before `ready`: the status is then formed in
        # two registered stages (sums, then compares), not after the products in one cycle.
        # Round 2's first operands (tile counts, in_c*groups) enter capped just above their
        # buffer's depth (`_capped`: the capped product is unchanged, b being at least 1 where
        # it counts), so these multipliers are as narrow as the depths, not the fields.
        rows_minus, cols_minus = cfg.rows - 1, cfg.cols - 1
        tiles_bits = min(20 - self._row_shift, cfg.act_depth.bit_length() + 1)
        m.submodules.src = src_mul = ShiftAddMultiplier(max(10, tiles_bits), 12, short_b_width=10)
        m.submodules.dst = dst_mul = ShiftAddMultiplier(max(10, tiles_bits), 12, short_b_width=10)
        m.submodules.taps = taps_mul = ShiftAddMultiplier(12, 10)
        m.submodules.conv = conv_mul = ShiftAddMultiplier(
            max(12, min(24, cfg.weight_depth.bit_length() + 1)), 12, short_b_width=10)
        m.submodules.k_conv = k_mul = ShiftAddMultiplier(12, 10)    # round 2 only: in_c * taps
        # round 2 starts after round 1: `second` for src, dst, taps (and k_conv), `second_conv`
        # for conv; steps is REMAINDER_CYCLES + 2 - t in cycle t after `load`
        first_end = 1 + max(src_mul.short_cycles, dst_mul.short_cycles, taps_mul.cycles)
        conv_first_end = 1 + conv_mul.cycles
        final = max(first_end + 1 + max(src_mul.cycles, dst_mul.cycles, taps_mul.cycles,
                                        k_mul.cycles),
                    conv_first_end + 1 + conv_mul.short_cycles)
        assert final <= REMAINDER_CYCLES + 1, "the products must be final a cycle before ready"
        steps = Signal(range(REMAINDER_CYCLES + 2))
        second, second_conv = Signal(), Signal()
        m.d.comb += [second.eq(steps == REMAINDER_CYCLES + 2 - first_end),
                     second_conv.eq(steps == REMAINDER_CYCLES + 2 - conv_first_end)]
        groups = (w.out_c + cols_minus) >> self._col_shift
        m.d.comb += [
            src_mul.start.eq(self.load | second), dst_mul.start.eq(self.load | second),
            taps_mul.start.eq(self.load | second), conv_mul.start.eq(self.load | second_conv),
            src_mul.short.eq(self.load), dst_mul.short.eq(self.load),
            conv_mul.short.eq(second_conv),
            src_mul.a.eq(Mux(self.load, w.in_h,
                             _capped((src_mul.short_product + rows_minus) >> self._row_shift,
                                     cfg.act_depth))),
            src_mul.b.eq(Mux(self.load, w.in_w, w.in_c)),
            dst_mul.a.eq(Mux(self.load, w.out_h,
                             _capped((dst_mul.short_product + rows_minus) >> self._row_shift,
                                     cfg.act_depth))),
            dst_mul.b.eq(Mux(self.load, w.out_w, w.out_c)),
            taps_mul.a.eq(Mux(self.load, w.kernel_h, w.out_c)),
            taps_mul.b.eq(Mux(self.load, w.kernel_w, taps_mul.product)),
            conv_mul.a.eq(Mux(self.load, w.in_c, _capped(conv_mul.product, cfg.weight_depth))),
            conv_mul.b.eq(Mux(self.load, groups, self.sizes.taps)),
            k_mul.start.eq(second), k_mul.a.eq(w.in_c), k_mul.b.eq(taps_mul.product),
        ]
        # round 1's kernel_h*kernel_w and out_h*out_w, kept for the issue (and conv's round 2)
        with m.If(second):
            m.d.sync += [self.sizes.taps.eq(taps_mul.product),
                         self.sizes.pixels.eq(dst_mul.short_product)]
        m.d.comb += self.sizes.k_conv.eq(k_mul.product)
        zero = Signal(init=1)              # the window at reset is all zero
        with m.If(self.load):
            m.d.sync += zero.eq(~((w.in_h != 0) & (w.in_w != 0) & (w.in_c != 0) & (w.out_h != 0) &
                                  (w.out_w != 0) & (w.out_c != 0) & (w.kernel_h != 0) &
                                  (w.kernel_w != 0) & (w.stride_h != 0) & (w.stride_w != 0) &
                                  (w.dilation_h != 0) & (w.dilation_w != 0)))
        rest = Signal(13)                 # the remainder being computed
        divisor = Signal(13 + REMAINDER_CYCLES)
        trial = Signal(unsigned(len(divisor) + 1))
        m.d.comb += trial.eq(rest - divisor)
        with m.If(self.load):
            m.d.sync += [rest.eq(w.out_c), divisor.eq(w.in_c << (REMAINDER_CYCLES - 1)),
                         steps.eq(REMAINDER_CYCLES + 1)]
        with m.Elif(steps != 0):
            m.d.sync += [steps.eq(steps - 1), divisor.eq(divisor >> 1)]
            with m.If((steps != 1) & ~trial[-1]):
                m.d.sync += rest.eq(trial)
        m.d.comb += self.ready.eq(steps == 0)

        # -- per CONV ---------------------------------------------------------------------------
        c = self.conv
        pool = (c.kind == ConvKind.AVERAGE_POOL) | (c.kind == ConvKind.MAX_POOL)
        field_bad = (zero | (pool & (w.in_c != w.out_c)) |
                     ((c.kind == ConvKind.DEPTHWISE) & (rest != 0)))
        src_count = _capped(src_mul.product, cfg.act_depth)
        dst_count = _capped(dst_mul.product, cfg.act_depth)
        weights = Mux(c.kind == ConvKind.CONV, _capped(conv_mul.short_product, cfg.weight_depth),
                      _capped(taps_mul.product, cfg.weight_depth))
        # stage 1: the range ends, registered; stage 2: their compares into the status
        ends = {}
        for name, count in (("src", src_count), ("dst", dst_count), ("w_addr", weights),
                            ("param_addr", w.out_c)):
            ends[name] = Signal(max(len(c[name]), len(count)) + 1, name=f"end_{name}")
            m.d.sync += ends[name].eq(c[name] + count)
        address_bad = ((ends["src"] > cfg.act_depth) | (ends["dst"] > cfg.act_depth) |
                       (~pool & ((ends["w_addr"] > cfg.weight_depth) |
                                 (ends["param_addr"] > cfg.param_depth))))
        # registered: the compares end in a flip-flop, not in the decoder's status (the decoder
        # folds this register into its outputs with one gate)
        m.d.sync += [self.status.eq(Mux(field_bad, Status.BAD_FIELD,
                                        Mux(address_bad, Status.BAD_ADDRESS, Status.OK))),
                     self.bad.eq(field_bad | address_bad)]
        return m
