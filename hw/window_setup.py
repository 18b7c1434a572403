"""The per-``CONV`` set-up of the window address generator: constant deltas and the first tile.

:class:`~tessera.hw.window.WindowAddressGenerator` keeps, per row lane, the input position of the
lane's output pixel at tap ``(0, 0)`` — ``ih``, ``iw``, ``q mod rows`` and the ACT entry base
``E = src + (q div rows)*in_c`` (mod :func:`entry_bits`), ``q = ih*in_w + iw`` taken linearly also where it is
padding (floor division by the power-of-two ``rows`` is a bit field) — and moves it by adding
constants, never multiplying: a move of ``q`` by ``d`` is ``low = (q mod rows) + (d mod rows)``,
``E += (d div rows)*in_c`` plus ``in_c`` when ``low >= rows``. :class:`WindowSetup` computes,
once per ``CONV``, every constant those moves add (:func:`window_constants`) and the first tile's
lane states (:func:`lane_state`, streamed to the lanes on ``o_lane``):

- the tap moves: ``j+1`` moves ``q`` by ``dilation_w``; ``i+1`` (``j`` back to 0) by
  ``dilation_h*in_w - (kernel_w-1)*dilation_w``;
- the tile move, ``rows = A*out_w + B`` pixels ahead (``B < out_w``): ``(ih, iw) += (A*stride_h,
  B*stride_w)``, or, for a lane whose ``ow + B`` passes the row (``iw >= wrap_iw``), one output
  row more and ``out_w`` pixels less: ``+= (stride_h, -out_w*stride_w)``, ``q`` by
  ``R = stride_h*in_w - out_w*stride_w`` more.

The products of window fields by the narrow ones (``stride_h*in_w``, ``out_w*stride_w``,
``pad_top*in_w``, ``dilation_h*in_w``, ``(kernel_w-1)*dilation_w``) are shift-add sums registered
in the first cycle; the three by ``in_c`` (``(x div rows)*in_c`` of ``q`` at output pixel 0, of
the ``i+1`` move and of ``R``) run on :class:`~tessera.hw.shift_add.ShiftAddMultiplier`. Then one
state walked a pixel per cycle from output pixel 0 (``ow`` wraps at ``out_w``) writes the first
tile's lanes, one per cycle, and its state ``rows`` pixels on gives the tile move (``A`` and
``B`` are never divided out).

Timing: ``start`` in cycle *L* (window and ``src`` held from *L* on) writes lane *r* in cycle
*L* + 9 + *r* (``o_lane``), and ``done`` rises in cycle *L* + :func:`setup_cycles` (``rows``)
with every constant valid; it stays up until the next ``start``.
``rows`` must be a power of two.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.timing import CONV_SETUP_CYCLES

from .shift_add import ShiftAddMultiplier

__all__ = ["WindowSetup", "window_constants", "lane_state", "setup_cycles", "entry_bits",
           "POSITION"]

#: Shape of a lane's input row and column (``ih``, ``iw``: up to ``1023*7 + 31*7``, and
#: ``-15`` of padding) and of their deltas.
POSITION = signed(15)

#: Cycle (after ``start``) of the last products: the narrow ones registered in ``start``'s
#: cycle, then three times ``in_c`` (7 cycles); the first lane is written in the next one.
_FIRST_LANE = 8


def setup_cycles(rows: int) -> int:
    """Return the cycles from ``start`` to ``done``: the products, ``rows + 1`` pixels walked,
    two cycles of tile constants (``CONV_SETUP_CYCLES + rows``, the cycle model's)."""
    assert CONV_SETUP_CYCLES == _FIRST_LANE + 3, "tessera.spec.timing.CONV_SETUP_CYCLES"
    return CONV_SETUP_CYCLES + rows


def entry_bits(config) -> int:
    """Return the width of an ACT entry address: ``E`` and its moves are kept modulo
    ``2**entry_bits``."""
    return max(1, (config.act_depth - 1).bit_length())


def _low_shape(rows):
    return unsigned(max(1, (rows - 1).bit_length()))


def lane_state(config) -> data.StructLayout:
    """Return the layout of one lane's position at tap ``(0, 0)``: ``ih``, ``iw``, ``qlow``
    (``q mod rows``) and the entry base ``e`` (mod ``2**entry_bits``)."""
    return data.StructLayout({"ih": POSITION, "iw": POSITION, "qlow": _low_shape(config.rows),
                              "e": unsigned(entry_bits(config))})


def _move(config, position):
    fields = {"dlow": _low_shape(config.rows), "de": unsigned(entry_bits(config)),
              "dec": unsigned(entry_bits(config))}
    if position:
        fields = {"dih": POSITION, "diw": POSITION, **fields}
    return data.StructLayout(fields)


def window_constants(config) -> data.StructLayout:
    """Return the layout of the constant moves of one ``CONV``.

    Each move has ``dlow = d mod rows``, ``de = (d div rows)*in_c`` and ``dec = de + in_c`` (mod
    ``2**entry_bits``) for its ``q`` delta ``d``: ``tap_j`` (``j+1``), ``tap_i`` (``i+1``, ``j`` back to 0),
    ``tile`` and ``tile_wrap`` (also ``dih``, ``diw``); ``wrap_iw`` is the first ``iw`` (at tap
    ``(0, 0)``) of a lane that takes ``tile_wrap``.
    """
    return data.StructLayout({
        "tap_j": _move(config, False), "tap_i": _move(config, False),
        "tile": _move(config, True), "tile_wrap": _move(config, True), "wrap_iw": POSITION,
    })


class WindowSetup(wiring.Component):
    """Compute a ``CONV``'s constant moves and its first tile's lane states.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    window : In(window_state())
        Held from ``start`` on.
    src : In(16)
        The ``CONV``'s ``src``, held from ``start`` on.
    start : In(1)
    done : Out(1)
        ``constants`` are valid and every lane was written.
    constants : Out(window_constants(config))
    o_lane : Out(lane_state(config))
    o_lane_en : Out(rows)
        One-hot: lane *r* takes ``o_lane`` this cycle.
    """

    def __init__(self, config):
        from .window import window_state          # (window.py imports this module)
        if config.rows & (config.rows - 1):
            self._MustUse__silence = True
            raise ValueError(f"The window set-up needs a power-of-two row count, not "
                             f"{config.rows}; use rows=1, 2, 4, 8, 16 or 32")
        self._config = config
        super().__init__({
            "window": In(window_state()), "src": In(16), "start": In(1), "done": Out(1),
            "constants": Out(window_constants(config)), "o_lane": Out(lane_state(config)),
            "o_lane_en": Out(config.rows),
        })

    def elaborate(self, platform):
        rows = self._config.rows
        shift = rows.bit_length() - 1
        w = self.window
        k = self.constants
        m = Module()

        def low(value):
            return value[:shift] if shift else 0

        ew = entry_bits(self._config)

        def high(value):                       # (value div rows) mod 2^ew, value signed
            return (value >> shift)[:ew]

        def carry_of(total):                   # low(a) + low(b) >= rows
            return total[shift] if shift else 0

        def times(a, b):                       # a * b for a narrow b: a balanced shift-add sum
            terms = [Mux(b[i], a << i, 0) for i in range(len(b))]
            while len(terms) > 1:
                terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                         for i in range(0, len(terms), 2)]
            return terms[0] if terms else 0

        def small_times_in_c(value):           # (value div rows)*in_c for a 3-bit value
            return times(w.in_c, value >> shift)

        # -- cycle L: the narrow products, registered ---------------------------------------------
        p, wd, pt, dh = (Signal(14, name=n) for n in ("p", "wd", "pt", "dh"))
        kw = Signal(8)
        de_1, dec_1 = Signal(ew), Signal(ew)    # a one-pixel move within the output row
        with m.If(self.start):
            m.d.sync += [
                p.eq(times(w.in_w, w.stride_h)), wd.eq(times(w.out_w, w.stride_w)),
                pt.eq(times(w.in_w, w.pad_top)), dh.eq(times(w.in_w, w.dilation_h)),
                kw.eq(times(w.kernel_w - 1, w.dilation_w)),
                de_1.eq(small_times_in_c(w.stride_w)),
                dec_1.eq(small_times_in_c(w.stride_w) + w.in_c),
                k.tap_j.dlow.eq(low(w.dilation_w)), k.tap_j.de.eq(small_times_in_c(w.dilation_w)),
                k.tap_j.dec.eq(small_times_in_c(w.dilation_w) + w.in_c),
            ]
        r_wrap = Signal(signed(18))            # R = stride_h*in_w - out_w*stride_w
        q00 = Signal(signed(18))               # q of output pixel 0 at tap (0, 0)
        dq_i = Signal(signed(18))              # the q move of i+1
        m.d.comb += [r_wrap.eq(p - wd), q00.eq(-(pt + w.pad_left)), dq_i.eq(dh - kw)]

        # -- cycles L+1 .. L+8: (x div rows)*in_c on shift-add multipliers ------------------------
        t = Signal(range(setup_cycles(rows) + 1))
        busy = Signal()
        second = busy & (t == 1)
        times_in_c = {}
        for name, value in (("e00", q00), ("de_i", dq_i), ("re", r_wrap)):
            mul = ShiftAddMultiplier(ew, len(w.in_c))
            m.submodules[f"times_in_c_{name}"] = mul
            m.d.comb += [mul.start.eq(second), mul.a.eq(high(value)), mul.b.eq(w.in_c)]
            times_in_c[name] = mul.product[:ew]
        assert 1 + m.submodules["times_in_c_e00"].cycles + 1 == _FIRST_LANE

        # -- the pixel walk (L+9 ..): lane r gets pixel r, then pixel `rows` gives the tile ------
        de_1w, dec_1w = Signal(ew), Signal(ew)  # a one-pixel move that wraps the output row
        re, re_c, re_2c = Signal(ew), Signal(ew), Signal(ew)
        e0, e0_c = Signal(ew), Signal(ew)
        dlow_1, dlow_1w = Signal.like(k.tap_j.dlow), Signal.like(k.tap_j.dlow)
        walk = Signal(lane_state(self._config))
        ow_left = Signal(10)                    # out_w - 1 - ow of the walked pixel
        wrap = Signal()                         # ow_left == 0: the next pixel is on a new row
        pixel = Signal(range(rows + 2))
        # sw + R: (sw div rows) + (R div rows) and a carry of the low parts
        wrap_1 = Signal(unsigned(len(k.tap_j.dlow) + 1))
        m.d.comb += wrap_1.eq(low(w.stride_w) + low(r_wrap))
        with m.If(busy & (t == _FIRST_LANE)):
            e00 = times_in_c["e00"]
            m.d.sync += [
                de_1w.eq(de_1 + times_in_c["re"] + Mux(carry_of(wrap_1), w.in_c, 0)),
                dec_1w.eq(de_1 + times_in_c["re"] + Mux(carry_of(wrap_1), w.in_c << 1, w.in_c)),
                re.eq(times_in_c["re"]), re_c.eq(times_in_c["re"] + w.in_c),
                re_2c.eq(times_in_c["re"] + (w.in_c << 1)),
                e0.eq(self.src + e00), e0_c.eq(self.src + e00 + w.in_c),
                walk.ih.eq(-w.pad_top), walk.iw.eq(-w.pad_left), walk.qlow.eq(low(q00)),
                walk.e.eq(self.src + e00), ow_left.eq(w.out_w - 1), wrap.eq(w.out_w == 1),
                pixel.eq(0),
                dlow_1.eq(low(w.stride_w)), dlow_1w.eq(low(wrap_1)),
                k.tap_i.dlow.eq(low(dq_i)), k.tap_i.de.eq(times_in_c["de_i"]),
                k.tap_i.dec.eq(times_in_c["de_i"] + w.in_c),
            ]
        walking = busy & (t > _FIRST_LANE) & (pixel <= rows)
        step_low = Mux(wrap, dlow_1w, dlow_1)
        total = Signal(unsigned(len(walk.qlow) + 1))
        m.d.comb += total.eq(walk.qlow + step_low)
        carry = carry_of(total)
        m.d.comb += [self.o_lane.eq(walk),
                     self.o_lane_en.eq(Cat(walking & (pixel == r) for r in range(rows)))]
        with m.If(walking):
            m.d.sync += [
                pixel.eq(pixel + 1), ow_left.eq(Mux(wrap, w.out_w - 1, ow_left - 1)),
                wrap.eq(Mux(wrap, w.out_w == 1, ow_left == 1)),
                walk.ih.eq(walk.ih + Mux(wrap, w.stride_h, 0)),
                walk.iw.eq(Mux(wrap, -w.pad_left, walk.iw + w.stride_w)),
                walk.qlow.eq(low(total)),
                walk.e.eq(walk.e + Mux(carry, Mux(wrap, dec_1w, dec_1), Mux(wrap, de_1w, de_1))),
            ]

        # -- the tile moves from pixel `rows` (two cycles) ----------------------------------------
        with m.If(walking & (pixel == rows)):
            # (q_rows - q_0) mod rows, and the carry that (q_0 mod rows) + it had
            borrow = walk.qlow < low(q00)
            m.d.sync += [
                k.tile.dih.eq(walk.ih + w.pad_top), k.tile.diw.eq(walk.iw + w.pad_left),
                k.tile.dlow.eq(low(walk.qlow - low(q00))),
                k.tile.de.eq(walk.e - Mux(borrow, e0_c, e0)),
                # ow + B >= out_w  <=>  iw >= (out_w - B)*stride_w - pad_left, B*stride_w = diw
                k.wrap_iw.eq(wd - walk.iw - (w.pad_left << 1)),
            ]
        with m.If(busy & (t == setup_cycles(rows) - 1)):
            wrap_total = Signal(unsigned(len(walk.qlow) + 1))
            m.d.comb += wrap_total.eq(k.tile.dlow + low(r_wrap))
            wrap_carry = carry_of(wrap_total)
            m.d.sync += [
                k.tile.dec.eq(k.tile.de + w.in_c),
                k.tile_wrap.dih.eq(k.tile.dih + w.stride_h),
                k.tile_wrap.diw.eq(k.tile.diw - wd),
                k.tile_wrap.dlow.eq(low(wrap_total)),
                k.tile_wrap.de.eq(k.tile.de + Mux(wrap_carry, re_c, re)),
                k.tile_wrap.dec.eq(k.tile.de + Mux(wrap_carry, re_2c, re_c)),
            ]

        with m.If(busy):
            m.d.sync += t.eq(t + 1)
            with m.If(t == setup_cycles(rows) - 1):
                m.d.sync += [busy.eq(0), self.done.eq(1)]
        with m.If(self.start):
            m.d.sync += [busy.eq(1), t.eq(1), self.done.eq(0)]
        return m
