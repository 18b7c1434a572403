"""The compute core: buffers, GEMM engine, MAC array, drain and post-processor.

``Core(config)`` is everything below the executor (``docs/architecture.md``): the ACT, WGT and
PARAM memories, the :class:`~tessera.hw.gemm.GemmEngine` stepping the
:class:`~tessera.hw.array.MacArray`, the :class:`~tessera.hw.drain.Drain` that takes a finished
tile's shadow accumulators through the :class:`~tessera.hw.postproc.PostProcessor` and writes the
``output_bits``-wide results back into ACT. Its ports are listed under Members below
(widened by the configuration's operand widths, docs/architecture.md); the cycle behaviour is the
model of ``tessera.spec.timing`` (hw/gemm.py and hw/drain.py give it cycle by cycle).

With ``config.cnn`` (ISA version 3) the Core also executes ``CONV`` and ``ADD``: the ACT is an
:class:`~tessera.hw.act_banks.ActBanks`, a :class:`~tessera.hw.conv_front.ConvFront` offers a
``CONV``'s gathered commands to the engine beside the plain ``GEMM`` commands, the drain sends
pools through a :class:`~tessera.hw.pool_post.PoolPostProcessor`, and an
:class:`~tessera.hw.add_stream.AddStream` runs ``ADD`` on the drain unit (its PARAM read port
and ACT write port).
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import isa

from .array import MacArray
from .cnn_issue import add_issue, conv_issue
from .core_cnn import elaborate_cnn_core, host_buffer_writes
from .counters import EventSignature
from .drain import Drain
from .gemm import GEMM_COMMAND, GemmEngine, gemm_command
from .layouts import PARAM_ENTRY
from .ports import ReadSignature, WriteSignature, write_width
from .postproc import PostProcessor
from .ram import block_ram, registered_read

__all__ = ["Core", "GEMM_COMMAND", "gemm_command", "write_width"]


class Core(wiring.Component):
    """Buffers and compute datapath of one accelerator.

    Parameters
    ----------
    config : AcceleratorConfig
        Array shape, operand and accumulator widths, buffer depths, requant modes and LUT.
    spram : bool or None
        Only with ``config.cnn``: ACT and WGT on single-port SB_SPRAM256KA
        (:mod:`tessera.hw.spram`; hw/core_cnn.py says how the agents take turns). ``None``:
        when the platform has them (an iCE40 UltraPlus). ``True`` without a platform simulates
        the single port (the tests).

    Members
    -------
    i_cmd : In(stream.Signature(gemm_command(config)))
        GEMM commands (fields validated by the executor); accepted when the engine can take one.
    idle : Out(1)
        No GEMM running or waiting to hand off, and the drain idle (all results written).
    write : In(WriteSignature.for_config(config))
        Host write of one entry of ACT, WGT, PARAM or LUT (:class:`tessera.spec.isa.Buffer`);
        happens in a cycle with ``write.en & write.ready``. Entry byte *i* is
        ``write.data[8i:8i+8]``: the bytes of :func:`tessera.spec.config.pack_operands`, so an
        ACT entry is ``data[:rows*input_bits]`` (operand *r* in bits
        ``[r*input_bits, (r+1)*input_bits)``, the padding nibble of an odd count of 4-bit
        operands dropped), a WGT entry ``data[:cols*weight_bits]``, a PARAM entry
        ``PARAM_ENTRY`` bits, a LUT entry ``data[0:8]``. ``write.ready`` is low in the cycles
        the drain writes ACT (it has priority on the ACT write port); in a ``cnn``
        configuration on block RAM only for a write of ACT (the drain's and the ADD's
        write-backs do not meet the other buffers' ports).
    read : In(ReadSignature.for_act(config))
        Host read of ACT (only while ``idle``): the entry addressed in the cycle of
        ``read.en`` is on ``read.data`` the cycle after, as its ``act_entry_bytes`` bytes
        (padding bits zero).
    events : Out(EventSignature(config))
        Per-cycle counter events: array occupied by a GEMM (``compute``); finished GEMM waiting
        for the drain (``stall``); useful MACs (``macs``).
    i_conv : In(stream.Signature(conv_issue(config)))
        Only with ``config.cnn``: issued ``CONV`` instructions (checked by the decoder). The
        payload is taken when ``valid`` is first seen and must be held; ``ready`` rises in the
        cycle the engine accepts the ``CONV``'s last command (hw/conv_front.py).
    i_add : In(stream.Signature(add_issue(config)))
        Only with ``config.cnn``: issued ``ADD`` instructions; ready unless one is already
        queued for the drain unit (hw/add_stream.py).
    """

    def __init__(self, config, *, spram=None):
        lanes = config.drain_lanes
        if config.cnn and (lanes & (lanes - 1) or config.rows % lanes):
            self._MustUse__silence = True     # refused: never elaborated, no warning
            raise ValueError(f"The Core's drain takes drain_lanes rows at once: it must be a "
                             f"power of two dividing rows={config.rows}, not {lanes}")
        self._config = config
        self._spram = spram
        members = {
            "i_cmd": In(stream.Signature(gemm_command(config))),
            "idle": Out(1),
            "write": In(WriteSignature.for_config(config)),
            "read": In(ReadSignature.for_act(config)),
            "events": Out(EventSignature(config)),
        }
        if config.cnn:
            members["i_conv"] = In(stream.Signature(conv_issue(config)))
            members["i_add"] = In(stream.Signature(add_issue(config)))
        super().__init__(members)

    @property
    def config(self):
        """The :class:`~tessera.spec.AcceleratorConfig` this core was elaborated for."""
        return self._config

    @property
    def spram(self):
        """Whether ACT and WGT are asked on single-port SPRAM (``None``: as the platform has)."""
        return self._spram

    def elaborate(self, platform):
        if self._config.cnn:
            return elaborate_cnn_core(self, platform)
        m = Module()
        config = self._config
        rows, cols = config.rows, config.cols

        act_bits, wgt_bits = rows * config.input_bits, cols * config.weight_bits
        # Block RAMs without collision logic: the ISA's hazard rules keep every read whose data
        # is used away from a write of the same address in the same cycle (hw/ram.py).
        m.submodules.act = act = block_ram(shape=act_bits, depth=config.act_depth)
        m.submodules.wgt = wgt = block_ram(shape=wgt_bits, depth=config.weight_depth)
        m.submodules.param = param = block_ram(shape=PARAM_ENTRY, depth=config.param_depth)
        act_wr, wgt_wr, param_wr = act.write_port(), wgt.write_port(), param.write_port()
        act_rd = registered_read(m, act, platform, name="act_rd_data")
        wgt_rd = registered_read(m, wgt, platform, name="wgt_rd_data")
        param_rd = registered_read(m, param, platform, name="param_rd_data")

        m.submodules.engine = engine = GemmEngine(config)
        m.submodules.array = array = MacArray(config)
        m.submodules.postproc = postproc = PostProcessor(config)
        m.submodules.drain = drain = Drain(config, postproc_latency=PostProcessor.latency)

        wiring.connect(m, wiring.flipped(self.i_cmd), engine.i_cmd)
        wiring.connect(m, engine.o_drain, drain.i_cmd)
        wiring.connect(m, drain.o_post, postproc.i)
        wiring.connect(m, postproc.o, drain.i_post)

        # Operand reads: the engine owns the ACT read port while it runs, the host otherwise.
        m.d.comb += [
            act_rd.addr.eq(Mux(engine.act_reading, engine.act_addr, self.read.addr)),
            engine.act_data.eq(act_rd.data),
            self.read.data.eq(act_rd.data),
            wgt_rd.addr.eq(engine.wgt_addr),
            engine.wgt_data.eq(wgt_rd.data),
        ]
        # Array: steps from the engine, shadow hand-off from the engine, shifts from the drain.
        m.d.comb += [
            array.a.as_value().eq(engine.a.as_value()),
            array.w.as_value().eq(engine.w.as_value()),
            array.step.eq(engine.step),
            array.clear.eq(engine.clear),
            array.shadow_load.eq(engine.shadow_load),
            array.shift_row.eq(drain.shift_row),
            array.shift_col.eq(drain.shift_col),
            drain.head.eq(array.head),
            param_rd.addr.eq(drain.param_addr),
            drain.param_data.eq(param_rd.data),
        ]

        # Host writes; the drain's write-back takes the ACT write port first.
        host_write = Signal()
        m.d.comb += [
            self.write.ready.eq(~drain.wr_en),
            host_write.eq(self.write.en & self.write.ready),
            act_wr.en.eq(drain.wr_en | (host_write & (self.write.buffer == isa.Buffer.ACT))),
            act_wr.addr.eq(Mux(drain.wr_en, drain.wr_addr, self.write.addr)),
            act_wr.data.eq(Mux(drain.wr_en, drain.wr_data, self.write.data[:act_bits])),
        ]
        host_buffer_writes(m, self, host_write, wgt_wr, param_wr, postproc)

        m.d.comb += self.idle.eq(~engine.busy & ~drain.busy)
        wiring.connect(m, engine.events, wiring.flipped(self.events))
        return m
