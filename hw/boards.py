"""Supported boards and the top-level design that puts an accelerator on one.

:data:`BOARDS` is the one table of per-board presets: which Amaranth platform describes the board,
its FPGA and the resources the build checks a configuration against, the oscillator and the
default target clock, the default :class:`~tessera.spec.AcceleratorConfig` and how the host
reaches the UART. :class:`BoardTop` is what gets synthesised: oscillator → PLL → reset
synchroniser (:mod:`tessera.hw.clocking`), the board's UART pins → :class:`~.uart.UARTStream`
→ the design's byte streams (``i_rx``/``o_tx``), and an LED that shows ``busy``.

The design is either the accelerator (``hw/top.py``) or :class:`LoopbackDesign`, a UART echo
used as a board self-test: it proves the clocking, pins and baud rate before a long accelerator
build.
"""

import importlib
from dataclasses import dataclass, field

from amaranth.build import Attrs, Pins, Resource, ResourceError, Subsignal
from amaranth.hdl import ClockDomain, Module
from amaranth.lib import io, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from tessera.spec import AcceleratorConfig

from .clocking import PLLClockDomain
from .uart import UARTStream, check_rx_timeout, uart_divisor

__all__ = ["Board", "BOARDS", "DESIGNS", "DEFAULT_BAUD", "get_board", "LoopbackDesign",
           "BoardTop"]

#: Default UART baud rate: the FT2232H (iCEBreaker) and FT231X (ULX3S) both do 3 Mbaud.
DEFAULT_BAUD = 3_000_000

#: Designs a board top can carry.
DESIGNS = ("accelerator", "loopback")


@dataclass(frozen=True)
class Board:
    """One supported board.

    Attributes
    ----------
    name : str
        Name used on the command line (``tessera build --board NAME``).
    title : str
        Human-readable board and part.
    platform : str
        ``"module:Class"`` of the amaranth-boards platform (imported only when building).
    family : str
        ``"ice40"`` or ``"ecp5"``.
    device : str
        The FPGA part.
    clock_resource : str
        Name of the oscillator resource in the platform.
    osc_mhz : float
        Oscillator frequency.
    clock_mhz : float
        Default target frequency of the accelerator clock.
    config : AcceleratorConfig
        Default configuration for this board.
    capacity : dict
        Resources of the part the pre-build check uses: ``lut4``, ``dsp``, ``bram`` (block RAMs),
        ``bram_bits`` (bits per block RAM), ``spram``.
    uart : str
        How the host reaches the UART.
    program : tuple of str
        Shell commands that load the bitstream (``{bitstream}`` is substituted).
    bitstream_ext : str
        Extension of the file to program.
    extra_resources : tuple
        Resources added to the platform (e.g. a header-pin UART).
    """
    name: str
    title: str
    platform: str
    family: str
    device: str
    clock_resource: str
    osc_mhz: float
    clock_mhz: float
    config: AcceleratorConfig
    capacity: dict
    uart: str
    program: tuple
    bitstream_ext: str
    extra_resources: tuple = field(default=())

    def make_platform(self):
        """Return an instance of the board's Amaranth platform (with ``extra_resources``)."""
        module_name, class_name = self.platform.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            from tessera.install import install_hint
            raise RuntimeError(f"Building for {self.name} needs amaranth-boards: "
                               f"{install_hint('fpga')} ({e})") from None
        platform = getattr(module, class_name)()
        if self.extra_resources:
            platform.add_resources(list(self.extra_resources))
        return platform


_ICE40UP5K = {"lut4": 5280, "dsp": 8, "bram": 30, "bram_bits": 4096, "spram": 4}


def _ecp5(lut4, dsp, bram):
    return {"lut4": lut4, "dsp": dsp, "bram": bram, "bram_bits": 18432, "spram": 0}


# The iCE40UP5K: every SB_MAC16 is a MAC (2x4), instantiated by hand with its operand, product
# and 32-bit accumulator registers inside (hw/mac_ice40.py: 5886 -> ~5400 logic cells), so the
# requant unit's wide products are built from logic (see tessera.hw.build). Only mode "onnx" is
# built (the 32x32 product of mode "tflite" would cost ~2500 LUT4 more), with the iterative
# mantissa multiplier at one bit per cycle (requant_cycles=24: a 24x1 product instead of a 24x24
# one of ~900 LUT4; a drain costs 24 cycles per element; 8 cycles saved only ~80 cells more than
# it costs), no activation LUT (lut=False: the clamp activations remain; ~80 cells) and 32-bit
# performance counters. Measured at fe5c7f1: 4762/5280 logic cells (90 %), 31.4 MHz at seed 1
# against the 30 MHz target (docs/boards.md).
# Buffers leave the block RAMs some headroom: ACT 16 b x 1024 = 4 EBR, WGT 32 b x 1024 = 8 EBR,
# PARAM 72 b x 256 = 5 EBR, frame buffers 2-4 EBR.
_ICEBREAKER_CONFIG = AcceleratorConfig(rows=2, cols=4, act_depth=1024, weight_depth=1024,
                                       param_depth=256, max_payload=1024,
                                       requant_modes=("onnx",), requant_cycles=24,
                                       lut=False, counter_bits=32)

_ULX3S = dict(platform_module="amaranth_boards.ulx3s", osc_mhz=25.0,
              uart="FT231X on the US1 USB port (/dev/ttyUSB0)",
              program=("openFPGALoader --board ulx3s {bitstream}",
                       "openFPGALoader --board ulx3s -f {bitstream}  # to SPI flash"))

_ORANGECRAB_UART = Resource(
    "uart", 0,
    # Feather convention: header pin 0 is RX, pin 1 is TX (3.3 V).
    Subsignal("rx", Pins("0", dir="i", conn=("io", 0), assert_width=1)),
    Subsignal("tx", Pins("1", dir="o", conn=("io", 0), assert_width=1)),
    Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP"))


def _ulx3s(size, *, lut4, dsp, bram, config, clock_mhz=100.0):
    return Board(
        name=f"ulx3s-{size}", title=f"ULX3S (ECP5 LFE5U-{size.upper()})",
        platform=f"{_ULX3S['platform_module']}:ULX3S_{size.upper()}_Platform", family="ecp5",
        device=f"LFE5U-{size.upper()}", clock_resource="clk25", osc_mhz=_ULX3S["osc_mhz"],
        clock_mhz=clock_mhz, config=config, capacity=_ecp5(lut4, dsp, bram),
        uart=_ULX3S["uart"], program=_ULX3S["program"], bitstream_ext="bit")


BOARDS = {board.name: board for board in [
    Board(
        name="icebreaker", title="iCEBreaker (iCE40UP5K)",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform", family="ice40",
        device="iCE40UP5K", clock_resource="clk12", osc_mhz=12.0, clock_mhz=30.0,
        config=_ICEBREAKER_CONFIG, capacity=_ICE40UP5K,
        uart="FT2232H channel B (the second port, /dev/ttyUSB1)",
        program=("iceprog {bitstream}",), bitstream_ext="bin"),
    _ulx3s("12f", lut4=12288, dsp=28, bram=32,
           config=AcceleratorConfig(rows=4, cols=4, act_depth=1024, weight_depth=1024,
                                    param_depth=256)),
    _ulx3s("25f", lut4=24288, dsp=28, bram=56,
           config=AcceleratorConfig(rows=4, cols=4)),
    _ulx3s("45f", lut4=43848, dsp=72, bram=108,
           config=AcceleratorConfig(rows=8, cols=6)),
    # 8x16 rather than 16x8: Yosys 0.70 (YoWASP) hits an internal assertion in ABC's netlist
    # reintegration on the 16-row accelerator (bench/results/boards/failed/), not on 8 rows.
    _ulx3s("85f", lut4=83640, dsp=156, bram=208,
           config=AcceleratorConfig(rows=8, cols=16)),
    Board(
        name="orangecrab-25f", title="OrangeCrab r0.2 (ECP5 LFE5U-25F)",
        platform="amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform", family="ecp5",
        device="LFE5U-25F", clock_resource="clk", osc_mhz=48.0, clock_mhz=100.0,
        config=AcceleratorConfig(rows=4, cols=4), capacity=_ecp5(24288, 28, 56),
        uart="header pins 0 (RX) and 1 (TX) through a 3.3 V USB-UART adapter; the USB port "
             "belongs to the FPGA and carries no UART in this design",
        program=("dfu-util -D {bitstream}  # hold the button while plugging in (bootloader)",),
        bitstream_ext="bit", extra_resources=(_ORANGECRAB_UART,)),
]}


def get_board(name):
    """Return the :class:`Board` called ``name``.

    Raises
    ------
    ValueError
        If there is no such board; the message lists the supported ones.
    """
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown board {name!r}; supported boards are "
                         f"{', '.join(BOARDS)}") from None


class LoopbackDesign(wiring.Component):
    """Echo every received byte: a board self-test with the accelerator's port signature.

    Members
    -------
    i_rx : In(stream.Signature(8))
        Bytes from the host.
    o_tx : Out(stream.Signature(8))
        The same bytes, in order, through a 64-byte FIFO.
    busy : Out(1)
        Bytes are waiting to be echoed.
    """

    i_rx: In(stream.Signature(8))
    o_tx: Out(stream.Signature(8))
    busy: Out(1)

    def __init__(self, config=None):
        self.config = config
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=64)
        m.d.comb += [
            fifo.w_data.eq(self.i_rx.payload), fifo.w_en.eq(self.i_rx.valid),
            self.i_rx.ready.eq(fifo.w_rdy),
            self.o_tx.payload.eq(fifo.r_data), self.o_tx.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o_tx.ready),
            self.busy.eq(fifo.level != 0),
        ]
        return m


def _make_design(design, config):
    if design == "loopback":
        return LoopbackDesign(config)
    if design == "accelerator":
        from .top import Accelerator
        return Accelerator(config)
    raise ValueError(f"Unknown design {design!r}; choose one of {', '.join(DESIGNS)}")


class BoardTop(wiring.Component):
    """The top level of a board build: clock, reset, UART and the design.

    Parameters
    ----------
    board : Board or str
        The board (see :data:`BOARDS`).
    config : AcceleratorConfig, optional
        Accelerator configuration; the board's default if omitted.
    clock_mhz : float, optional
        Target clock; the board's default if omitted. The PLL produces the nearest frequency it
        can (:attr:`clock_hz`).
    baud : int
        UART baud rate.
    design : str
        ``"accelerator"`` or ``"loopback"``.
    """

    def __init__(self, board, config=None, *, clock_mhz=None, baud=DEFAULT_BAUD,
                 design="accelerator"):
        try:
            self._configure(board, config, clock_mhz, baud, design)
        except (ValueError, TypeError):
            self._MustUse__silence = True  # a rejected top is not an unused one
            raise
        super().__init__({})

    def _configure(self, board, config, clock_mhz, baud, design):
        self.board = board if isinstance(board, Board) else get_board(board)
        self.config = self.board.config if config is None else config
        if not isinstance(self.config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not "
                            f"{type(self.config).__name__}")
        if design not in DESIGNS:
            raise ValueError(f"Unknown design {design!r}; choose one of {', '.join(DESIGNS)}")
        self.design = design
        self.baud = baud
        target = self.board.clock_mhz if clock_mhz is None else clock_mhz
        # Validate the clock and the baud rate now, not in the middle of elaboration.
        from .clocking import ecp5_pll_params, ice40_pll_params
        search = ice40_pll_params if self.board.family == "ice40" else ecp5_pll_params
        self.clock_mhz = float(search(self.board.osc_mhz, target).fout_mhz)
        self.divisor = uart_divisor(self.clock_hz, baud)
        if design == "accelerator":
            check_rx_timeout(self.config.rx_timeout_cycles, self.divisor)

    @property
    def clock_hz(self):
        """Frequency of the design's clock, as the PLL really produces it."""
        return self.clock_mhz * 1e6

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        clk_port = platform.request(self.board.clock_resource, dir="-")
        m.submodules.clocking = clocking = PLLClockDomain(
            family=self.board.family, clk_port=clk_port, fin_mhz=self.board.osc_mhz,
            fout_mhz=self.clock_mhz,
            # the CNN designs' reset reaches some 20,000 flip-flops (the dense presets' builds
            # are kept as their reports were made)
            global_reset=self.board.family == "ecp5" and self.config.cnn)

        # Every subsignal raw (the ULX3S's also has rts and dtr, unused): a default direction
        # would instantiate buffers for them, and Amaranth deprecates it with a warning.
        pins = platform.request("uart", 0, dir={sub.name: "-"
                                                for sub in platform.lookup("uart", 0).ios})
        m.submodules.rx_buf = rx_buf = io.Buffer("i", pins.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", pins.tx)
        m.submodules.uart = uart = UARTStream(divisor=self.divisor)
        m.submodules.design = design = _make_design(self.design, self.config)
        m.d.comb += [uart.rx.eq(rx_buf.i), tx_buf.o.eq(uart.tx)]
        wiring.connect(m, uart.o, design.i_rx)
        wiring.connect(m, design.o_tx, uart.i)

        led = _first_led(platform)
        if led is not None:
            m.submodules.led_buf = led_buf = io.Buffer("o", led)
            m.d.comb += led_buf.o.eq(design.busy | uart.busy)
        return m


def _first_led(platform):
    """Return the port of the board's first (green) LED, or ``None``."""
    for name, dir in (("led", "-"), ("rgb_led", {"r": "-", "g": "-", "b": "-"})):
        try:
            res = platform.request(name, 0, dir=dir)
        except ResourceError:  # the platform has no such resource
            continue
        return res.g if name == "rgb_led" else res
    return None
