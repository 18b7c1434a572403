"""Board clocking: PLL parameter search, PLL primitives and the reset that follows lock.

The divider searches reproduce what the vendor-neutral helper tools compute (``icepll`` from
IceStorm for the iCE40 ``SB_PLL40_PAD``, ``ecppll`` from Project Trellis for the ECP5
``EHXPLLL``): the tests compare both against the YoWASP builds of those tools. Frequencies are
handled as exact fractions, so the choice does not depend on floating-point rounding.

:class:`PLLClockDomain` turns a board's oscillator pin into the ``sync`` domain: PLL, then a
power-on delay counted in the new clock (iCE40 block RAMs read as zero for a few microseconds
after configuration, and a PLL output is unusable before ``LOCK``), then Amaranth's
:class:`~amaranth.lib.cdc.ResetSynchronizer` so that reset is released synchronously.
"""

from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import (ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module,
                          ResetSignal, Signal)
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["ICE40PLLParams", "ECP5PLLParams", "ice40_pll_params", "ecp5_pll_params",
           "PLLClockDomain", "POWER_ON_DELAY_S"]

#: Time the ``sync`` reset is held after the PLL locks (iCE40 BRAMs need > 3 us after
#: configuration; the same margin is harmless on the ECP5).
POWER_ON_DELAY_S = 20e-6


def _mhz(value):
    return Fraction(value).limit_denominator(1_000_000)


@dataclass(frozen=True)
class ICE40PLLParams:
    """Divider settings of an iCE40 ``SB_PLL40_*`` in SIMPLE feedback mode."""
    divr: int
    divf: int
    divq: int
    filter_range: int
    fin_mhz: Fraction
    fout_mhz: Fraction

    @property
    def fvco_mhz(self):
        """VCO frequency in MHz."""
        return self.fin_mhz / (self.divr + 1) * (self.divf + 1)


@dataclass(frozen=True)
class ECP5PLLParams:
    """Divider settings of an ECP5 ``EHXPLLL`` with feedback from ``CLKOP``."""
    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkop_cphase: int
    fin_mhz: Fraction
    fout_mhz: Fraction

    @property
    def fvco_mhz(self):
        """VCO frequency in MHz."""
        return self.fin_mhz / self.clki_div * self.clkfb_div * self.clkop_div


def ice40_pll_params(fin_mhz, fout_mhz):
    """Return the ``SB_PLL40`` dividers whose output is closest to ``fout_mhz``.

    Raises
    ------
    ValueError
        If an input or output frequency is outside the PLL's range (10–133 MHz in,
        16–275 MHz out).
    """
    fin, fout = _mhz(fin_mhz), _mhz(fout_mhz)
    if not 10 <= fin <= 133:
        raise ValueError(f"iCE40 PLL input must be 10 to 133 MHz, not {float(fin):g} MHz")
    if not 16 <= fout <= 275:
        raise ValueError(f"iCE40 PLL output must be 16 to 275 MHz, not {float(fout):g} MHz")
    best = None
    for divr in range(16):
        pfd = fin / (divr + 1)
        if not 10 <= pfd <= 133:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533 <= vco <= 1066:
                continue
            for divq in range(1, 7):
                out = vco / 2 ** divq
                if best is None or abs(out - fout) < abs(best[0] - fout):
                    best = (out, divr, divf, divq)
    out, divr, divf, divq = best
    pfd = fin / (divr + 1)
    filter_range = 1 + sum(pfd >= limit for limit in (17, 26, 44, 66, 101))
    return ICE40PLLParams(divr=divr, divf=divf, divq=divq, filter_range=filter_range,
                          fin_mhz=fin, fout_mhz=out)


def ecp5_pll_params(fin_mhz, fout_mhz):
    """Return the ``EHXPLLL`` dividers whose ``CLKOP`` is closest to ``fout_mhz``.

    Among equally close solutions the one with the VCO nearest 600 MHz wins (as ``ecppll``).

    Raises
    ------
    ValueError
        If an input or output frequency is outside the PLL's range (8–400 MHz in,
        10–400 MHz out).
    """
    fin, fout = _mhz(fin_mhz), _mhz(fout_mhz)
    if not 8 <= fin <= 400:
        raise ValueError(f"ECP5 PLL input must be 8 to 400 MHz, not {float(fin):g} MHz")
    if not 10 <= fout <= 400:
        raise ValueError(f"ECP5 PLL output must be 10 to 400 MHz, not {float(fout):g} MHz")
    best = None
    for clki_div in range(1, 129):
        pfd = fin / clki_div
        if not Fraction(3125, 1000) <= pfd <= 400:
            continue
        for clkfb_div in range(1, 81):
            out = pfd * clkfb_div
            for clkop_div in range(1, 129):
                vco = out * clkop_div
                if not 400 <= vco <= 800:
                    continue
                key = (abs(out - fout), abs(vco - 600))
                if best is None or key < best[0]:
                    best = (key, clki_div, clkfb_div, clkop_div, out)
    _, clki_div, clkfb_div, clkop_div, out = best
    return ECP5PLLParams(clki_div=clki_div, clkfb_div=clkfb_div, clkop_div=clkop_div,
                         clkop_cphase=clkop_div // 2, fin_mhz=fin, fout_mhz=out)


class PLLClockDomain(Elaboratable):
    """Drive the ``sync`` clock and reset from an oscillator pin through the family's PLL.

    The parent defines the ``sync`` domain (``m.domains.sync = ClockDomain()``); this block
    drives its clock and holds its reset until the PLL has locked for :data:`POWER_ON_DELAY_S`.

    Parameters
    ----------
    family : str
        ``"ice40"`` (``SB_PLL40_PAD``: the oscillator must sit on the PLL's pad) or ``"ecp5"``
        (``EHXPLLL``).
    clk_port : amaranth.lib.io.PortLike
        The oscillator pin, requested with ``dir="-"``.
    fin_mhz, fout_mhz : float
        Oscillator and wanted ``sync`` frequencies.
    global_reset : bool
        ECP5 only: drive the ``sync`` reset through a ``DCCA`` so that nextpnr routes it on a
        primary clock net (which reaches every slice's LSR) instead of the general routing: in
        the CNN designs it has over 20,000 flip-flop loads across the die (issue #15).

    Attributes
    ----------
    params : ICE40PLLParams or ECP5PLLParams
        The dividers used; ``params.fout_mhz`` is the frequency actually produced.
    locked : Signal
        The PLL's ``LOCK`` output.
    """

    def __init__(self, *, family, clk_port, fin_mhz, fout_mhz, global_reset=False):
        if family not in ("ice40", "ecp5"):
            raise ValueError(f"PLL family must be 'ice40' or 'ecp5', not {family!r}")
        if global_reset and family != "ecp5":
            raise ValueError("global_reset is for the ECP5's DCCA")
        self.family = family
        self.global_reset = global_reset
        self.clk_port = clk_port
        self.params = (ice40_pll_params if family == "ice40" else ecp5_pll_params)(
            fin_mhz, fout_mhz)
        self.locked = Signal()

    @property
    def clock_hz(self):
        """The ``sync`` frequency in Hz (what the PLL really produces)."""
        return float(self.params.fout_mhz) * 1e6

    def elaborate(self, platform):
        m = Module()
        clk_out = Signal()
        p = self.params
        if self.family == "ice40":
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=Const(p.divr, 4), p_DIVF=Const(p.divf, 7), p_DIVQ=Const(p.divq, 3),
                p_FILTER_RANGE=Const(p.filter_range, 3),
                i_PACKAGEPIN=self.clk_port.io,
                i_RESETB=Const(1), i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=clk_out, o_LOCK=self.locked)
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", self.clk_port)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{float(p.fin_mhz):g}",
                a_FREQUENCY_PIN_CLKOP=f"{float(p.fout_mhz):g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
                p_CLKOP_DIV=p.clkop_div, p_CLKOP_CPHASE=p.clkop_cphase, p_CLKOP_FPHASE=0,
                p_CLKFB_DIV=p.clkfb_div, p_CLKI_DIV=p.clki_div, p_FEEDBK_PATH="CLKOP",
                i_CLKI=clk_buf.i, i_CLKFB=clk_out, i_RST=Const(0), i_STDBY=Const(0),
                i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1),
                i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0),
                i_ENCLKOP=Const(0),
                o_CLKOP=clk_out, o_LOCK=self.locked)
        # No clock constraint on clk_out: nextpnr derives the PLL output's from the oscillator
        # pin's and the dividers (a constraint on the pre-synthesis net name would be ignored).
        m.d.comb += ClockSignal("sync").eq(clk_out)

        # Power-on delay counted in the new clock, restarted whenever lock is lost.
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += ClockSignal("por").eq(clk_out)
        delay = max(2, int(POWER_ON_DELAY_S * self.clock_hz))
        timer = Signal(range(delay + 1))
        ready = Signal()
        with m.If(~self.locked):
            m.d.por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)
        if self.global_reset:
            # synchronised as the reset of a local domain on the same clock, then onto a global
            m.domains.reset = ClockDomain("reset", local=True)
            m.d.comb += ClockSignal("reset").eq(clk_out)
            reset = Signal()
            m.submodules.reset_buf = Instance("DCCA", i_CLKI=ResetSignal("reset"),
                                              i_CE=Const(1), o_CLKO=reset)
            m.d.comb += ResetSignal("sync").eq(reset)
        m.submodules.reset_sync = ResetSynchronizer(
            ~ready, domain="reset" if self.global_reset else "sync")
        return m
