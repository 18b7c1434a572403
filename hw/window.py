"""The window address generator of ISA version 3: the gather requests of a ``CONV``'s steps.

docs/isa.md ("Window gather"): output pixel ``p = oh*out_w + ow`` of tile ``t`` sits on row lane
``p - t*rows``; its tap ``(i, j)`` reads input pixel ``(ih, iw) = (oh*stride_h + i*dilation_h -
pad_top, ow*stride_w + j*dilation_w - pad_left)``, channel *c* of it being operand ``q mod rows``
of ``ACT[src + (q div rows)*in_c + c]`` with ``q = ih*in_w + iw``, or padding outside the input
(and on the lanes past the last output pixel). :class:`WindowAddressGenerator` turns one command
(a tile, and all channels or one) into the stream of its steps' requests in the ISA's order —
tap ``(i, j)`` outer, channel inner — for :class:`~tessera.hw.gather.GatherArbiter`.

The lanes' output pixels are kept in registers and moved by a chain of one-pixel increments
(lane 0 after the previous tile's last lane), never divided; the tap offsets are counters.
``rows`` must be a power of two (``q div rows`` and ``q mod rows`` are bit fields).
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import isa
from tessera.spec.isa import CnnOpcode

from .gather import gather_request
from .layouts import struct_layout

__all__ = ["WindowAddressGenerator", "window_state", "window_sizes", "window_command"]


def _times_stride(value, stride):
    """Return ``value * stride`` as shifts and adds (a 3-bit stride: three terms).

    Yosys's ``booth`` pass leaves a product this narrow alone, and ``synth_ecp5`` would give
    each a MULT18X18D: two per row lane, more than the part has beside the MAC array and the
    requant units.
    """
    return sum(Mux(stride[b], value << b, 0) for b in range(len(stride)))


def window_state() -> data.StructLayout:
    """Return the layout of the window state: the fields of ``WINDOW`` (docs/isa.md)."""
    layout = struct_layout(isa.CNN_LAYOUTS[CnnOpcode.WINDOW])
    return data.StructLayout({name: layout[name].shape for name in layout.members
                              if name != "opcode" and not name.startswith("_")})


def window_sizes() -> data.StructLayout:
    """Return the layout of a window's sizes that a ``CONV`` needs from its first cycle on.

    ``taps = kernel_h * kernel_w``, ``pixels = out_h * out_w`` and ``k_conv = taps * in_c``,
    computed once per ``WINDOW`` by :class:`~tessera.hw.conv_checks.WindowChecks` (which has the
    cycles for shift-add products) and issued with the window state.
    """
    return data.StructLayout({"taps": unsigned(10), "pixels": unsigned(20),
                              "k_conv": unsigned(22)})


def window_command(config) -> data.StructLayout:
    """Return the layout of one generator command (the gather of one gathered GEMM)."""
    return data.StructLayout({
        "src": unsigned(16),
        "first_tile": unsigned(1),   # start at tile 0
        "next_tile": unsigned(1),    # else move to the next tile (neither: the same tile)
        "all_channels": unsigned(1),  # kind 0: K = taps * in_c; else one channel, K = taps
        "channel": unsigned(12),
    })


class WindowAddressGenerator(wiring.Component):
    """Generate the per-lane gather requests of gathered GEMM commands.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    window : In(window_state())
        The window state (held while commands run).
    i_cmd : In(stream.Signature(window_command(config)))
        One command per gathered GEMM; ready when the previous command's last step was taken.
    o_step : Out(stream.Signature(gather_request(config)))
        The steps, in order.
    """

    def __init__(self, config):
        if config.rows & (config.rows - 1):
            self._MustUse__silence = True     # refused: never elaborated, no warning
            raise ValueError(f"The window address generator needs a power-of-two row count, "
                             f"not {config.rows}; use rows=2, 4, 8, 16 or 32")
        self._config = config
        super().__init__({
            "window": In(window_state()),
            "i_cmd": In(stream.Signature(window_command(config))),
            "o_step": Out(stream.Signature(gather_request(config))),
        })

    def elaborate(self, platform):
        cfg = self._config
        rows = cfg.rows
        shift = rows.bit_length() - 1
        w = self.window
        m = Module()

        # -- the lanes' output pixels ---------------------------------------------------------
        oh = [Signal(unsigned(11), name=f"oh{r}") for r in range(rows)]
        ow = [Signal(unsigned(11), name=f"ow{r}") for r in range(rows)]

        def increment(h, x):
            wrap = x + 1 == w.out_w
            return Mux(wrap, h + 1, h), Mux(wrap, 0, x + 1)

        cmd = Signal(window_command(cfg))
        accept = Signal()
        m.d.comb += accept.eq(self.i_cmd.valid & self.i_cmd.ready)
        payload = self.i_cmd.payload
        prev = None
        moved = []
        for r in range(rows):
            if r == 0:
                h0, x0 = increment(oh[-1], ow[-1])
                h, x = Mux(payload.first_tile, 0, h0), Mux(payload.first_tile, 0, x0)
            else:
                h, x = increment(*prev)
            sh_, sw_ = Signal(11, name=f"oh{r}_next"), Signal(11, name=f"ow{r}_next")
            m.d.comb += [sh_.eq(h), sw_.eq(x)]
            prev = (sh_, sw_)
            moved.append(prev)
        with m.If(accept & (payload.first_tile | payload.next_tile)):
            m.d.sync += [sig.eq(new) for r in range(rows)
                         for sig, new in zip((oh[r], ow[r]), moved[r])]

        # -- the step counters: tap (i, j) outer, channel inner -------------------------------
        i, j = Signal(5), Signal(5)
        off_h, off_w = Signal(8), Signal(8)        # i*dilation_h, j*dilation_w
        chan = Signal(12)
        running = Signal()
        last_chan = Mux(cmd.all_channels, chan + 1 == w.in_c, 1)
        last_j = j + 1 == w.kernel_w
        last_i = i + 1 == w.kernel_h
        last_step = last_chan & last_j & last_i
        take = Signal()
        m.d.comb += [take.eq(self.o_step.valid & self.o_step.ready),
                     self.o_step.valid.eq(running),
                     self.i_cmd.ready.eq(~running | (take & last_step))]
        with m.If(take):
            with m.If(~last_chan):
                m.d.sync += chan.eq(chan + 1)
            with m.Else():
                m.d.sync += chan.eq(Mux(cmd.all_channels, 0, cmd.channel))
                with m.If(~last_j):
                    m.d.sync += [j.eq(j + 1), off_w.eq(off_w + w.dilation_w)]
                with m.Else():
                    m.d.sync += [j.eq(0), off_w.eq(0), i.eq(i + 1),
                                 off_h.eq(off_h + w.dilation_h)]
            with m.If(last_step):
                m.d.sync += running.eq(0)
        with m.If(accept):
            m.d.sync += [cmd.eq(payload), running.eq(1), i.eq(0), j.eq(0), off_h.eq(0),
                         off_w.eq(0), chan.eq(Mux(payload.all_channels, 0, payload.channel))]

        # -- the requests of the current step ---------------------------------------------------
        for r in range(rows):
            ih = Signal(signed(14), name=f"ih{r}")
            iw = Signal(signed(14), name=f"iw{r}")
            q = Signal(unsigned(20), name=f"q{r}")
            m.d.comb += [
                ih.eq(_times_stride(oh[r], w.stride_h) + off_h - w.pad_top),
                iw.eq(_times_stride(ow[r], w.stride_w) + off_w - w.pad_left),
                q.eq(ih.as_unsigned()[:10] * w.in_w + iw.as_unsigned()[:10]),
            ]
            inside = ((ih >= 0) & (ih < w.in_h) & (iw >= 0) & (iw < w.in_w) &
                      (oh[r] < w.out_h))
            lane = self.o_step.payload[r]
            m.d.comb += [
                lane.pad.eq(~inside),
                lane.operand.eq(q[:shift] if shift else 0),
                lane.entry.eq(cmd.src + (q >> shift) * w.in_c + chan),
            ]
        return m
