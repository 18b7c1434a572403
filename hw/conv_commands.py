"""The commands of one ``CONV``: tile and channel-group counters and their address adders.

docs/isa.md ("``CONV``") runs, for each output pixel tile ``t < T = ceil(out_h*out_w / rows)``
(outer) and each channel group ``g`` (inner), one gathered GEMM command with ``clear`` and
``drain``. :class:`ConvCommandSequencer` turns a ``CONV`` into that sequence: for each command
its weights, parameters, drain address, ``m_rows`` (the valid pixels of tile *t*), ``n_cols``
and ``k``, and the :class:`~tessera.hw.window.WindowAddressGenerator` command of its gather —

- kind 0 (conv): groups of ``cols`` output channels, ``K = kernel_h*kernel_w*in_c``, weights
  ``w_addr + g*K``, parameters ``param_addr + g*cols``, drain to ``dst + t*out_c + g*cols``;
- kinds 1-3 (depthwise, average and max pool): one group per output channel, ``K`` the taps,
  one column, input channel ``g div (out_c / in_c)``, weights ``w_addr + g*K``, parameters
  ``param_addr + g``, drain to ``dst + t*out_c + g``.

Every address is a running sum and nothing is multiplied here: ``K`` and the pixel count come
with the window state as its sizes (:func:`~tessera.hw.window.window_sizes`, computed once per
``WINDOW`` by :class:`~tessera.hw.conv_checks.WindowChecks`); the input channel advances as
``g*in_c`` passes multiples of ``out_c``. The instruction's checks (docs/isa.md, "Checks") are
the decoder's: a command is only started for a valid ``CONV``.

For 100 MHz on the ECP5 (issue #15) every field of the offered command comes from a register
(``m_rows``, ``n_cols``: one choice of two), and so does whether it is its tile's last and its
``CONV``'s last: the next command is computed from registers alone (an adder or a compare
each), and ``o_cmd.ready`` (the gather's handshake, through
:class:`~tessera.hw.conv_front.ConvFront`) only enables the registers (2 LUT levels after it on
orangecrab-25f-cnn, ``bench/bench_cnn_units_depth.py``; 8 before).

Timing: a ``CONV`` accepted in cycle *E* (``i_conv`` transfer) offers its first command from
cycle *E+1*, each next one in the cycle after the previous was taken; ``i_conv`` is ready
again in the cycle its last command is taken.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import isa
from tessera.spec.isa import CnnOpcode, ConvKind

from .layouts import struct_layout
from .window import window_command, window_sizes, window_state

__all__ = ["ConvCommandSequencer", "conv_request", "conv_command"]


def conv_request() -> data.StructLayout:
    """Return the layout of a ``CONV`` as the sequencer hands it over (its named fields)."""
    layout = struct_layout(isa.CNN_LAYOUTS[CnnOpcode.CONV])
    return data.StructLayout({name: layout[name].shape
                              for name in ("kind", "src", "dst", "w_addr", "param_addr")})


def conv_command(config) -> data.StructLayout:
    """Return the layout of one gathered GEMM command and its gather."""
    return data.StructLayout({
        "w_addr": unsigned(16), "k": unsigned(16), "out_addr": unsigned(16),
        "param_addr": unsigned(16), "m_rows": unsigned(8), "n_cols": unsigned(8),
        "kind": unsigned(2),
        "gather": window_command(config),
    })


def _at_most(value, bound):
    """Return ``value <= bound`` for a constant ``bound``; a power of two without an adder."""
    k = bound.bit_length() - 1
    if bound != 1 << k or len(value) <= k:
        return value <= bound
    return ~value[k + 1:].any() & ~(value[k] & value[:k].any())


class ConvCommandSequencer(wiring.Component):
    """Sequence the gathered GEMM commands of ``CONV`` instructions.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    window : In(window_state())
        The window state (held while a ``CONV`` runs).
    sizes : In(window_sizes())
        The window's sizes (held with it).
    i_conv : In(stream.Signature(conv_request()))
    o_cmd : Out(stream.Signature(conv_command(config)))
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "window": In(window_state()),
            "sizes": In(window_sizes()),
            "i_conv": In(stream.Signature(conv_request())),
            "o_cmd": Out(stream.Signature(conv_command(config))),
        })

    def elaborate(self, platform):
        cfg = self._config
        rows, cols = cfg.rows, cfg.cols
        w = self.window
        m = Module()

        req = Signal(conv_request())
        running = Signal()
        conv_kind = req.kind == ConvKind.CONV
        m.d.comb += self.o_cmd.payload.k.eq(Mux(conv_kind, self.sizes.k_conv, self.sizes.taps))

        # The current command in registers (m_rows, n_cols: one choice of them), and what its
        # successor needs.
        pixels_left = Signal(21)                   # out_h*out_w - t*rows
        group_left = Signal(13)                    # conv: out_c - g*cols; else out_c - g
        tile_base = Signal(16)                     # dst + t*out_c
        out_addr = Signal(16)                      # tile_base + g*cols (conv) / + g
        w_addr, param_addr = Signal(16), Signal(16)
        # the commands' k as a register for the next command's w_addr (`sizes` is the issued
        # CONV's through a select while one is loaded, late from the program sequencer)
        k_step = Signal(16)
        channel = Signal(12)
        # g*in_c mod out_c (kinds 1-3) as `wrap_at = g*in_c mod out_c + in_c - out_c`: the input
        # channel advances after this command when it is not negative.
        wrap_at = Signal(signed(14))
        in_less_out = Signal(signed(14))           # in_c - out_c, for the whole CONV
        last_group = Signal()                      # the last command of its tile
        last_tile = Signal()                       # the command is in the last tile
        first = Signal()                           # the first command of the CONV
        new_tile = Signal()                        # the first command of its tile

        cmd = self.o_cmd.payload
        m.d.comb += [
            cmd.w_addr.eq(w_addr), cmd.out_addr.eq(out_addr), cmd.param_addr.eq(param_addr),
            cmd.kind.eq(req.kind),
            cmd.m_rows.eq(Mux(last_tile, pixels_left, rows)),
            cmd.n_cols.eq(Mux(conv_kind, Mux(last_group, group_left, cols), 1)),
            cmd.gather.src.eq(req.src), cmd.gather.first_tile.eq(first),
            cmd.gather.next_tile.eq(new_tile & ~first),
            cmd.gather.all_channels.eq(conv_kind), cmd.gather.channel.eq(channel),
            self.o_cmd.valid.eq(running),
        ]
        taken = self.o_cmd.valid & self.o_cmd.ready
        m.d.comb += self.i_conv.ready.eq(~running | (taken & last_group & last_tile))

        # The command after the current one, from registers only: `taken` just loads it.
        def one_group(kind, out_c):
            """Return whether a tile has one group (its first command is its last)."""
            conv = kind == ConvKind.CONV
            return Mux(conv, _at_most(out_c, cols), _at_most(out_c, 1))

        group_width = Mux(conv_kind, cols, 1)
        rest = group_left - group_width            # the next group's channels
        advance = ~conv_kind & ~wrap_at[-1]        # the next group's input channel is the next
        tile_pixels = pixels_left - rows
        next_last_tile = _at_most(pixels_left, 2 * rows)    # the next tile is the last
        next_last_group = Mux(conv_kind, _at_most(group_left, 2 * cols), _at_most(group_left, 2))
        one_tile = _at_most(self.sizes.pixels, rows)
        # The registers change when a CONV is accepted or a command taken; which of the two
        # does not depend on `o_cmd.ready` (a CONV is accepted while running only with the last
        # command taken), so that the late `ready` only enables the registers.
        change = (self.i_conv.valid & ~running) | taken
        accept = self.i_conv.valid & (~running | (last_group & last_tile))
        with m.If(change):
            with m.If(accept):
                p = self.i_conv.payload
                m.d.sync += [req.eq(p), running.eq(1), first.eq(1), new_tile.eq(1),
                             pixels_left.eq(self.sizes.pixels), tile_base.eq(p.dst),
                             out_addr.eq(p.dst), w_addr.eq(p.w_addr), param_addr.eq(p.param_addr),
                             channel.eq(0), wrap_at.eq(w.in_c - w.out_c),
                             in_less_out.eq(w.in_c - w.out_c),
                             k_step.eq(Mux(p.kind == ConvKind.CONV, self.sizes.k_conv,
                                           self.sizes.taps)),
                             last_tile.eq(one_tile),
                             group_left.eq(w.out_c), last_group.eq(one_group(p.kind, w.out_c))]
            with m.Else():
                m.d.sync += first.eq(0)
                with m.If(~last_group):
                    m.d.sync += [group_left.eq(rest), out_addr.eq(out_addr + group_width),
                                 param_addr.eq(param_addr + group_width),
                                 w_addr.eq(w_addr + k_step), new_tile.eq(0),
                                 last_group.eq(next_last_group),
                                 channel.eq(channel + advance),
                                 wrap_at.eq(wrap_at + Mux(advance, in_less_out, w.in_c))]
                with m.Else():
                    # next tile: the groups start again
                    m.d.sync += [pixels_left.eq(tile_pixels), tile_base.eq(tile_base + w.out_c),
                                 out_addr.eq(tile_base + w.out_c), param_addr.eq(req.param_addr),
                                 w_addr.eq(req.w_addr), channel.eq(0), wrap_at.eq(in_less_out),
                                 new_tile.eq(1),
                                 last_tile.eq(next_last_tile),
                                 group_left.eq(w.out_c),
                                 last_group.eq(one_group(req.kind, w.out_c))]
                    with m.If(last_tile):
                        m.d.sync += running.eq(0)
        return m
