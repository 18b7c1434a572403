"""The checks of a ``CONV`` against the window state (ISA version 3, docs/isa.md "Checks").

A ``CONV`` earns ``BAD_FIELD`` when the window has a zero size, kernel, stride or dilation (e.g.
no ``WINDOW`` since reset), when a pool's ``in_c`` differs from its ``out_c``, or when a depthwise
convolution's ``out_c`` is not a multiple of its ``in_c``; then ``BAD_ADDRESS`` when its input
map (``ceil(in_h*in_w/rows)*in_c`` entries from ``src``), its output map
(``ceil(out_h*out_w/rows)*out_c`` from ``dst``), its weights (``groups*K`` from ``w_addr``,
kinds 0 and 1) or its parameters (``out_c`` from ``param_addr``, kinds 0 and 1) leave their
buffers. Everything that depends on the window alone is computed once per ``WINDOW``
(:class:`WindowChecks`, ``load``): the products, and ``out_c mod in_c`` by a restoring divider
of one bit per cycle, done within the next instruction's 16-cycle fetch (``ready``).
``rows`` and ``cols`` must be powers of two (the tile and group counts are shifts).
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.isa import ConvKind
from tessera.spec.protocol import Status

from .conv_commands import conv_request
from .window import window_state

__all__ = ["WindowChecks", "REMAINDER_CYCLES"]

#: Cycles of ``out_c mod in_c`` after ``load`` (12-bit channel counts, one bit per cycle).
REMAINDER_CYCLES = 12


def _log2(value, what):
    if value & (value - 1):
        raise ValueError(f"The CONV checks need a power-of-two {what}, not {value}")
    return value.bit_length() - 1


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
        ``Status.OK``, ``BAD_FIELD`` or ``BAD_ADDRESS`` for ``conv`` (valid while ``ready``).
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
        })

    def elaborate(self, platform):
        cfg = self._config
        w = self.window
        m = Module()

        # -- per window: sizes (registered) and out_c mod in_c (sequential) ----------------------
        taps = Signal(10)
        src_count, dst_count = Signal(unsigned(34)), Signal(unsigned(34))
        conv_weights, dw_weights = Signal(unsigned(36)), Signal(unsigned(36))
        zero = Signal(init=1)              # the window at reset is all zero
        with m.If(self.load):
            tiles_in = (w.in_h * w.in_w + cfg.rows - 1) >> self._row_shift
            tiles_out = (w.out_h * w.out_w + cfg.rows - 1) >> self._row_shift
            groups = (w.out_c + cfg.cols - 1) >> self._col_shift
            k = w.kernel_h * w.kernel_w
            m.d.sync += [
                taps.eq(k), src_count.eq(tiles_in * w.in_c), dst_count.eq(tiles_out * w.out_c),
                conv_weights.eq(groups * k * w.in_c), dw_weights.eq(w.out_c * k),
                zero.eq(~((w.in_h != 0) & (w.in_w != 0) & (w.in_c != 0) & (w.out_h != 0) &
                          (w.out_w != 0) & (w.out_c != 0) & (w.kernel_h != 0) &
                          (w.kernel_w != 0) & (w.stride_h != 0) & (w.stride_w != 0) &
                          (w.dilation_h != 0) & (w.dilation_w != 0))),
            ]
        rest = Signal(13)                 # the remainder being computed
        divisor = Signal(13 + REMAINDER_CYCLES)
        steps = Signal(range(REMAINDER_CYCLES + 2))
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
        weights = Mux(c.kind == ConvKind.CONV, conv_weights, dw_weights)
        address_bad = ((c.src + src_count > cfg.act_depth) |
                       (c.dst + dst_count > cfg.act_depth) |
                       (~pool & ((c.w_addr + weights > cfg.weight_depth) |
                                 (c.param_addr + w.out_c > cfg.param_depth))))
        m.d.comb += self.status.eq(Mux(field_bad, Status.BAD_FIELD,
                                       Mux(address_bad, Status.BAD_ADDRESS, Status.OK)))
        return m
