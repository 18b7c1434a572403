"""The window address generator of ISA version 3: the gather requests of a ``CONV``'s steps.

docs/isa.md ("Window gather"): output pixel ``p = oh*out_w + ow`` of tile ``t`` sits on row lane
``p - t*rows``; its tap ``(i, j)`` reads input pixel ``(ih, iw) = (oh*stride_h + i*dilation_h -
pad_top, ow*stride_w + j*dilation_w - pad_left)``, channel *c* of it being operand ``q mod rows``
of ``ACT[src + (q div rows)*in_c + c]`` with ``q = ih*in_w + iw``, or padding outside the input
(and on the lanes past the last output pixel). :class:`WindowAddressGenerator` turns one command
(a tile, and all channels or one) into the stream of its steps' requests in the ISA's order —
tap ``(i, j)`` outer, channel inner — for :class:`~tessera.hw.gather.GatherArbiter`.

No lane multiplies and no lane depends on another: each keeps its pixel's position at tap
``(0, 0)`` (:func:`~tessera.hw.window_setup.lane_state`: ``ih``, ``iw``, ``q mod rows`` and the
entry base ``E``) and moves by constants that :class:`~tessera.hw.window_setup.WindowSetup`
computes once per ``CONV`` (after ``load``, which also writes the first tile's positions):

- a step's request of lane *r* is ``entry = E + c`` (``E`` of the tap, ``c`` the step's
  channel), ``operand = q mod rows``, and ``pad`` unless the lane is below the
  command's ``m_rows`` and its ``(ih, iw)`` is inside the input at the tap's offsets (the
  signs of four registered distances to the input's edges, moved by the dilations);
- a tap move adds ``tap_j`` or ``tap_i`` to the lane's ``(q mod rows, E)`` (one carry);
- a next tile adds ``tile`` or ``tile_wrap`` to the lane's position, chosen by flags that each
  lane registers from its position in the background (``iw >= wrap_iw``, then the carry of
  ``q mod rows``); the channel groups of a tile restart from the tile's position.

Timing: a command accepted in cycle *X* shows its first step from *X+1*, or from *X+2* when it
moves to the next tile (the position is updated in *X*, the tap state from it in *X+1*); each
step after the one taken in cycle *T* from *T+1*. The next command is taken from the cycle
after the last step was taken (``i_cmd.ready`` is a function of registers), and after a
next-tile command not before *X+3* (the lanes' flags); in a ``CONV`` the engine accepts a
command at least ``GEMM_OVERHEAD_CYCLES + 1`` cycles after its previous command's last step was
taken, so none of these delays is ever seen by the engine. ``rows`` must be a power of two (``q div
rows`` and ``q mod rows`` are bit fields).
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import isa
from tessera.spec.isa import CnnOpcode

from .gather import gather_request
from .layouts import struct_layout
from .window_setup import POSITION, WindowSetup, entry_bits, lane_state

#: A lane's distance to an edge of the input (``ih - in_h`` and the like, with the dilations
#: added over the taps): two bits wider than a position.
DISTANCE = signed(POSITION.width + 2)

__all__ = ["WindowAddressGenerator", "window_state", "window_sizes", "window_command",
           "generator_command"]


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


def generator_command(config) -> data.StructLayout:
    """Return the layout of a generator command: the gather's fields and the tile's valid pixels
    (``m_rows``, the engine command's)."""
    return data.StructLayout({"gather": window_command(config), "m_rows": unsigned(8)})


class WindowAddressGenerator(wiring.Component):
    """Generate the per-lane gather requests of gathered GEMM commands.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    window : In(window_state())
        The window state, held from ``load`` on while commands run.
    src : In(16)
        The ``CONV``'s ``src``, held with the window (the commands' ``src`` is not used).
    load : In(1)
        Set up a ``CONV``: its constants and first tile (:class:`~tessera.hw.window_setup.
        WindowSetup`; no command is taken until :func:`~tessera.hw.window_setup.setup_cycles`
        cycles later). Only while no command runs.
    i_cmd : In(stream.Signature(generator_command(config)))
        One command per gathered GEMM, ready when the set-up is done and the previous command's
        last step was taken (in an earlier cycle). ``first_tile`` is the set-up's tile, ``next_tile`` the one after
        the previous command's, neither the previous command's tile.
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
            "src": In(16),
            "load": In(1),
            "i_cmd": In(stream.Signature(generator_command(config))),
            "o_step": Out(stream.Signature(gather_request(config))),
        })

    def elaborate(self, platform):
        cfg = self._config
        rows = cfg.rows
        shift = rows.bit_length() - 1
        w = self.window
        m = Module()
        m.submodules.setup = setup = WindowSetup(cfg)
        m.d.comb += [setup.window.eq(w), setup.src.eq(self.src), setup.start.eq(self.load)]
        k = setup.constants

        def low(value):
            return value[:shift] if shift else 0

        def carry(total):
            return total[shift] if shift else 0

        # -- the command and its step counters: tap (i, j) outer, channel inner ---------------
        cmd = Signal(generator_command(cfg))
        accept = Signal()
        take = Signal()
        running = Signal()
        reload = Signal()                 # the tap state is loaded from the moved tile next
        settling = Signal(2)              # cycles until the lanes' tile flags are settled again
        settled = Signal()
        m.d.comb += settled.eq(settling == 0)
        payload = self.i_cmd.payload
        # taps and channels left, each with a registered "this is the last" flag
        i_left, j_left = Signal(5), Signal(5)
        chan_left = Signal(12)
        i_last, j_last, chan_last = Signal(), Signal(), Signal()
        chan = Signal(12)                 # the step's channel: c, or the command's channel
        last_step = chan_last & j_last & i_last
        one_chan = ~cmd.gather.all_channels | (w.in_c == 1)
        m.d.comb += [
            accept.eq(self.i_cmd.valid & self.i_cmd.ready),
            take.eq(self.o_step.valid & self.o_step.ready),
            self.o_step.valid.eq(running & ~reload),
            # (from registers only: the arbiter's ready never reaches the command sequencer)
            self.i_cmd.ready.eq(setup.done & ~self.load & settled & ~running),
        ]
        # the constants of the tap move after this tap
        move = Signal.like(k.tap_j)
        first_move = Mux(w.kernel_w == 1, k.tap_i, k.tap_j)
        # Every register below takes its next value, computed from registers alone, when a step
        # is taken (`take`; in hw/gathered.py `o_step.ready` is a skid register's "empty", not
        # the arbiter's ready or the engine's acceptance) or a command accepted (never both: a
        # command is accepted only while none runs), so that `take` only enables.
        tap_move = Signal()               # the step taken is its tap's last
        m.d.comb += tap_move.eq(take & chan_last)
        channel = Mux(cmd.gather.all_channels, 0, cmd.gather.channel)
        with m.If(take | accept):
            m.d.sync += [
                chan.eq(Mux(accept, Mux(payload.gather.all_channels, 0, payload.gather.channel),
                            Mux(chan_last, channel, chan + 1))),
                chan_left.eq(Mux(accept | chan_last, w.in_c - 1, chan_left - 1)),
                chan_last.eq(Mux(accept, ~payload.gather.all_channels | (w.in_c == 1),
                                 Mux(chan_last, one_chan, chan_left == 1))),
                running.eq(accept | ~last_step),
            ]
        with m.If(tap_move | accept):
            m.d.sync += [
                j_left.eq(Mux(accept | j_last, w.kernel_w - 1, j_left - 1)),
                j_last.eq(Mux(accept | j_last, w.kernel_w == 1, j_left == 1)),
                move.eq(Mux(accept | j_last, first_move,
                            Mux(j_left == 1, k.tap_i, k.tap_j))),
            ]
        with m.If((tap_move & j_last) | accept):
            m.d.sync += [
                i_left.eq(Mux(accept, w.kernel_h - 1, i_left - 1)),
                i_last.eq(Mux(accept, w.kernel_h == 1, i_left == 1)),
            ]
        with m.If(accept):
            m.d.sync += [cmd.eq(payload), reload.eq(payload.gather.next_tile)]
        with m.If(reload):
            m.d.sync += reload.eq(0)
        with m.If(~settled):
            m.d.sync += settling.eq(settling - 1)
        with m.If(accept & payload.gather.next_tile):
            m.d.sync += settling.eq(2)

        # -- the lanes ----------------------------------------------------------------------------
        tile_move = accept & payload.gather.next_tile
        from_base = Signal()              # the tap state is loaded from the tile's position
        m.d.comb += from_base.eq((accept & ~payload.gather.next_tile) | reload)
        for r in range(rows):
            base = Signal(lane_state(cfg), name=f"base{r}")
            wrapf = Signal(name=f"wrap{r}")       # the next tile move wraps the output row
            tile_carry = Signal(name=f"tile_carry{r}")
            qlow = Signal.like(base.qlow, name=f"qlow{r}")
            ec = Signal(entry_bits(cfg), name=f"ec{r}")   # the tap's E
            valid = Signal(name=f"valid{r}")
            tile_low = Signal(unsigned(len(qlow) + 1), name=f"tile_low{r}")
            m.d.comb += tile_low.eq(base.qlow + Mux(wrapf, k.tile_wrap.dlow, k.tile.dlow))
            m.d.sync += [wrapf.eq(base.iw >= k.wrap_iw), tile_carry.eq(carry(tile_low))]
            with m.If(setup.o_lane_en[r]):
                m.d.sync += base.eq(setup.o_lane)
            moved_ih = Signal.like(base.ih, name=f"moved_ih{r}")
            moved_iw = Signal.like(base.iw, name=f"moved_iw{r}")
            m.d.comb += [moved_ih.eq(base.ih + Mux(wrapf, k.tile_wrap.dih, k.tile.dih)),
                         moved_iw.eq(base.iw + Mux(wrapf, k.tile_wrap.diw, k.tile.diw))]
            with m.If(tile_move):
                m.d.sync += [
                    base.ih.eq(moved_ih),
                    base.iw.eq(moved_iw),
                    base.qlow.eq(low(tile_low)),
                    base.e.eq(base.e + Mux(wrapf, Mux(tile_carry, k.tile_wrap.dec,
                                                      k.tile_wrap.de),
                                           Mux(tile_carry, k.tile.dec, k.tile.de))),
                ]
            with m.If(accept):
                m.d.sync += valid.eq(payload.m_rows > r)
            # the tap state: from the tile's position at a command's start, then tap moves
            step_low = Signal(unsigned(len(qlow) + 1), name=f"step_low{r}")
            m.d.comb += step_low.eq(qlow + move.dlow)
            with m.If(tap_move | from_base):
                m.d.sync += [qlow.eq(Mux(from_base, base.qlow, low(step_low))),
                             ec.eq(Mux(from_base, base.e,
                                       ec + Mux(carry(step_low), move.dec, move.de)))]

            # The tap's bounds as four registered distances of the lane's (ih, iw) at the tap
            # to the input's edges, whose signs are the compares: inside <=> ih >= 0, ih < in_h,
            # iw >= 0 and iw < in_w at the tap's offsets. A command starts them from the lane's
            # position (after its tile move), a tap move adds the dilation (a new tap row starts
            # the columns again); nothing is compared after the registers (the arbiter takes
            # the pad flags at its acceptance).
            to_top, to_bottom, to_left, to_right = (
                Signal(DISTANCE, name=f"{n}{r}") for n in ("to_top", "to_bottom", "to_left",
                                                          "to_right"))
            start_ih = Mux(tile_move, moved_ih, base.ih)
            start_iw = Mux(tile_move, moved_iw, base.iw)
            with m.If(accept):
                m.d.sync += [to_top.eq(start_ih), to_bottom.eq(start_ih - w.in_h),
                             to_left.eq(start_iw), to_right.eq(start_iw - w.in_w)]
            with m.Elif(tap_move & j_last):
                m.d.sync += [to_top.eq(to_top + w.dilation_h),
                             to_bottom.eq(to_bottom + w.dilation_h),
                             to_left.eq(base.iw), to_right.eq(base.iw - w.in_w)]
            with m.Elif(tap_move):
                m.d.sync += [to_left.eq(to_left + w.dilation_w),
                             to_right.eq(to_right + w.dilation_w)]
            inside = ~to_top[-1] & to_bottom[-1] & ~to_left[-1] & to_right[-1]

            lane = self.o_step.payload[r]
            m.d.comb += [
                lane.pad.eq(~(valid & inside)),
                lane.operand.eq(qlow if shift else 0),
                lane.entry.eq(ec + chan), lane.base.eq(ec),
            ]
        return m
