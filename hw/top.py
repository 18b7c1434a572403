"""The accelerator top level: byte streams in and out, everything else inside.

``Accelerator(config)`` joins the :class:`~tessera.hw.link.FrameReceiver`, the
:class:`~tessera.hw.executor.Executor`, the :class:`~tessera.hw.link.FrameSender`, the compute
:class:`~tessera.hw.core.Core` and the :class:`~tessera.hw.counters.PerfCounters`. Board tops put a
UART in front of the two streams; the RTL simulation drives them from cocotb through the Verilog
written by :func:`generate_verilog` (module ``tessera_top``; ports ``clk``, ``rst``,
``i_rx__payload``, ``i_rx__valid``, ``i_rx__ready``, ``o_tx__payload``, ``o_tx__valid``,
``o_tx__ready``, ``busy``).

With ``config.cnn`` (ISA version 3) the executor issues ``CONV`` and ``ADD`` to the Core on the
streams of :mod:`tessera.hw.cnn_issue` (``o_conv``/``i_conv``, ``o_add``/``i_add``).
"""

from pathlib import Path

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .core import Core
from .counters import PerfCounters
from .executor import Executor
from .link import FrameReceiver, FrameSender

__all__ = ["Accelerator", "TOP_NAME", "generate_verilog"]

#: Name of the top-level module in the generated Verilog.
TOP_NAME = "tessera_top"


class Accelerator(wiring.Component):
    """One Tessera accelerator behind a pair of byte streams.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    i_rx : In(stream.Signature(8))
        Bytes from the host (never more than one frame is buffered: ``ready`` is low while a
        received frame waits for the executor).
    o_tx : Out(stream.Signature(8))
        Response bytes.
    busy : Out(1)
        Anything in progress: a frame being received (after its header), a request being
        handled, a GEMM or drain in flight, or a response being sent. Low exactly when the
        device will do nothing until another byte arrives (an unfinished header still times out
        on a board, where the clock never stops).
    """

    i_rx: In(stream.Signature(8))
    o_tx: Out(stream.Signature(8))
    busy: Out(1)

    def __init__(self, config):
        self._config = config
        super().__init__()

    @property
    def config(self):
        """The :class:`~tessera.spec.AcceleratorConfig` this accelerator is built from."""
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.submodules.receiver = rx = FrameReceiver(cfg)
        m.submodules.executor = ex = Executor(cfg)
        m.submodules.sender = tx = FrameSender()
        m.submodules.core = core = Core(cfg)
        m.submodules.counters = perf = PerfCounters(cfg)

        wiring.connect(m, wiring.flipped(self.i_rx), rx.i)
        wiring.connect(m, rx.o_frame, ex.i_frame)
        wiring.connect(m, ex.o_resp, tx.i_start)
        wiring.connect(m, ex.o_payload, tx.i_payload)
        wiring.connect(m, tx.o, wiring.flipped(self.o_tx))
        wiring.connect(m, ex.o_cmd, core.i_cmd)
        if cfg.cnn:
            wiring.connect(m, ex.o_conv, core.i_conv)
            wiring.connect(m, ex.o_add, core.i_add)
        wiring.connect(m, ex.frame_buf, rx.frame_buf)
        wiring.connect(m, ex.write, core.write)
        wiring.connect(m, ex.read, core.read)
        wiring.connect(m, core.events, perf.events)
        wiring.connect(m, perf.counters, ex.counters)
        m.d.comb += [
            ex.core_idle.eq(core.idle),
            perf.ev_rx.eq(self.i_rx.valid & self.i_rx.ready),
            perf.ev_tx.eq(self.o_tx.valid & self.o_tx.ready),
            self.busy.eq(rx.busy | ex.busy | tx.busy | ~core.idle),
        ]
        return m


def generate_verilog(config, path) -> Path:
    """Write the Verilog of ``Accelerator(config)`` (module :data:`TOP_NAME`) and return its path.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig
    path : str or os.PathLike
        The output file if it ends in ``.v``; otherwise a directory (created if missing) in which
        ``tessera_top.v`` is written.
    """
    from amaranth.back import verilog

    from tessera.spec import AcceleratorConfig

    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"Expected an AcceleratorConfig, not {config!r}")
    path = Path(path)
    if path.suffix != ".v":
        path = path / f"{TOP_NAME}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    top = Accelerator(config)
    text = verilog.convert(top, name=TOP_NAME, emit_src=False)
    path.write_text(text)
    return path
