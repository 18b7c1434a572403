"""The Core of a ``cnn`` configuration (ISA version 3): the version-2 Core plus CONV and ADD.

:func:`elaborate_cnn_core` builds what ``Core.elaborate`` builds for a ``cnn`` configuration
(hw/core.py keeps the version-2 netlist unchanged for the others):

- ACT is an :class:`~tessera.hw.act_banks.ActBanks`: the host write, the drain's and the
  ADD's write-back and the engine's, the ADD's and the host's entry reads keep their entry-wide
  ports, the gather reads per bank;
- the GEMM engine takes plain ``GEMM`` commands from ``i_cmd`` and gathered ones from the
  :class:`~tessera.hw.conv_front.ConvFront` (one at a time: the program sequencer issues the
  next instruction only after the ``CONV``'s last command is accepted); the array's steps come
  from the engine's operand reads or from the gather, whichever is stepping (never both: a
  command's steps end three cycles before its hand-off, the next one's begin two after);
- the drain sends pools to a :class:`~tessera.hw.pool_post.PoolPostProcessor`;
- with ``spram`` (the iCE40 UltraPlus: ACT and WGT on single-port SB_SPRAM256KA), the agents
  take turns on each memory's one port without costing a cycle: the drain's and the ADD's
  write-backs wait in a small buffer for a cycle in which nothing reads ACT (each command has
  at least ``GEMM_OVERHEAD_CYCLES`` without operand reads, and a drain's writes all come before
  the next hand-off, so the buffer is empty before the next drain starts and before ``idle``);
  the host writes only while the Core is idle, and the ISA keeps ``ADD`` and ``LOAD`` from
  running beside a ``GEMM``/``CONV`` (docs/isa.md, "Ordering"), so nothing else meets;
- an :class:`~tessera.hw.add_stream.AddStream` runs ``ADD`` on the drain unit with the engine
  idle: it reads PARAM through the drain's port, ACT through the entry read port, requantizes on
  the drain's PostProcessors (``shared``) and writes ACT through the drain's write port, and
  keeps the engine from accepting commands meanwhile.
"""

from amaranth import Assert, Cat, Module, Mux, Signal
from amaranth.lib import fifo, wiring

from tessera.spec import isa

from .act_banks import ActBanks
from .add_stream import AddStream
from .array import MacArray
from .conv_front import ConvFront
from .drain import Drain
from .gemm import GemmEngine
from .layouts import PARAM_ENTRY
from .pool_post import PoolPostProcessor
from .postproc import PostProcessor, shares_requant
from .ram import block_ram, registered_read
from .spram import SpramMemory, has_spram

__all__ = ["elaborate_cnn_core", "host_buffer_writes"]


def host_buffer_writes(m, core, host_write, wgt_wr, param_wr, postproc):
    """Connect the host's writes of WGT, PARAM and the LUT (``host_write``: one this cycle)."""
    config, write = core.config, core.write
    m.d.comb += [
        wgt_wr.en.eq(host_write & (write.buffer == isa.Buffer.WGT)),
        wgt_wr.addr.eq(write.addr),
        wgt_wr.data.eq(write.data[:config.cols * config.weight_bits]),
        param_wr.en.eq(host_write & (write.buffer == isa.Buffer.PARAM)),
        param_wr.addr.eq(write.addr),
        param_wr.data.eq(write.data[:PARAM_ENTRY.size]),
    ]
    if config.lut:
        m.d.comb += [
            postproc.lut_wr_en.eq(host_write & (write.buffer == isa.Buffer.LUT)),
            postproc.lut_wr_addr.eq(write.addr[:8]),
            postproc.lut_wr_data.eq(write.data[:8]),
        ]


def elaborate_cnn_core(core, platform):
    """Return the module of ``core`` (a :class:`~tessera.hw.core.Core` of a ``cnn`` config)."""
    m = Module()
    config = core.config
    rows, cols = config.rows, config.cols
    act_bits, wgt_bits = rows * config.input_bits, cols * config.weight_bits

    spram = has_spram(platform) if core.spram is None else core.spram
    m.submodules.act = act = ActBanks(config, spram=spram)
    if spram:
        m.submodules.wgt = wgt = SpramMemory(width=wgt_bits, depth=config.weight_depth)
        wgt_wr, wgt_rd = wgt.write, wgt.read
    else:
        m.submodules.wgt = wgt = block_ram(shape=wgt_bits, depth=config.weight_depth)
        wgt_wr = wgt.write_port()
        wgt_rd = registered_read(m, wgt, platform, name="wgt_rd_data")
    m.submodules.param = param = block_ram(shape=PARAM_ENTRY, depth=config.param_depth)
    param_wr = param.write_port()
    param_rd = registered_read(m, param, platform, name="param_rd_data")

    m.submodules.engine = engine = GemmEngine(config)
    m.submodules.array = array = MacArray(config)
    m.submodules.postproc = postproc = PostProcessor(config)
    m.submodules.pool_post = pool_post = PoolPostProcessor(config)
    m.submodules.drain = drain = Drain(config, postproc_latency=PostProcessor.latency)
    for i in range(1, config.drain_lanes):
        # the drain's other lanes, each with its own post-processors (no LUT: cnn presets)
        m.submodules[f"postproc{i}"] = lane_post = PostProcessor(config)
        m.submodules[f"pool_post{i}"] = lane_pool = PoolPostProcessor(config)
        wiring.connect(m, getattr(drain, f"o_post{i}"), lane_post.i)
        wiring.connect(m, lane_post.o, getattr(drain, f"i_post{i}"))
        wiring.connect(m, getattr(drain, f"o_pool{i}"), lane_pool.i)
        wiring.connect(m, lane_pool.o, getattr(drain, f"i_pool{i}"))
        if config.lut:
            m.d.comb += [lane_post.lut_wr_en.eq(postproc.lut_wr_en),
                         lane_post.lut_wr_addr.eq(postproc.lut_wr_addr),
                         lane_post.lut_wr_data.eq(postproc.lut_wr_data)]
    if config.drain_lanes > 1:
        m.d.comb += drain.heads.eq(array.heads)
    m.submodules.front = front = ConvFront(config)
    m.submodules.adds = adds = AddStream(config)
    if shares_requant(config):
        # an ADD runs on the drain's requant of each lane (the drain unit is free meanwhile)
        for i in range(config.drain_lanes):
            name = f"requant{i}" if i else "requant"
            lane_post = m.submodules[f"postproc{i}" if i else "postproc"]
            wiring.connect(m, getattr(adds, name), lane_post.shared)

    wiring.connect(m, drain.o_post, postproc.i)
    wiring.connect(m, postproc.o, drain.i_post)
    wiring.connect(m, drain.o_pool, pool_post.i)
    wiring.connect(m, pool_post.o, drain.i_pool)
    wiring.connect(m, wiring.flipped(core.i_conv), front.i_conv)
    wiring.connect(m, wiring.flipped(core.i_add), adds.i_add)

    # Engine commands: a gathered command first (the sequencer issues nothing meanwhile).
    plain, gathered, cmd = core.i_cmd, front.o_cmd, engine.i_cmd
    for name in plain.payload.shape().members:
        m.d.comb += getattr(cmd.payload, name).eq(
            Mux(gathered.valid, getattr(gathered.payload, name), getattr(plain.payload, name)))
    m.d.comb += [
        cmd.payload.gathered.eq(gathered.valid),
        cmd.payload.kind.eq(Mux(gathered.valid, gathered.payload.kind, 0)),
        # an ADD queued or running keeps the engine (and the ACT read port) to itself
        cmd.valid.eq((plain.valid | gathered.valid) & ~adds.blocks),
        gathered.ready.eq(cmd.ready & ~adds.blocks),
        plain.ready.eq(cmd.ready & ~gathered.valid & ~adds.blocks),
        engine.g_step.eq(front.step), engine.g_last.eq(front.o_last),
        engine.taps.eq(front.taps),
    ]

    # ACT reads: the engine's operands (the host's while idle), the gather, the ADD.
    m.d.comb += [
        act.rd_en.eq(1),
        # (selected by registers: the ADD's address while one is queued or runs, the host's
        # only while the Core is idle)
        act.rd_addr.eq(Mux(engine.act_reading, engine.act_addr,
                           Mux(adds.blocks, adds.act_addr, core.read.addr))),
        engine.act_data.eq(act.rd_data),
        core.read.data.eq(act.rd_data),
        act.bank_en.eq(front.bank_en), act.bank_addr.eq(front.bank_addr),
        front.bank_data.eq(act.bank_data),
        adds.act_data.eq(act.rd_data),
        # WGT: the gather's reads happen only while the engine reads nothing; the engine's
        # `act_issue` (its state and step count, registers) selects, not the gather's `wgt_en`
        # (the arbiter's acceptance, many LUT levels deep) before a net to every WGT block
        wgt_rd.addr.eq(Mux(engine.act_issue, engine.wgt_addr, front.wgt_addr)),
        engine.wgt_data.eq(wgt_rd.data), front.wgt_data.eq(wgt_rd.data),
    ]

    # Array: steps from the engine or the gather; the shadow from the engine and the drain.
    m.d.comb += [
        array.a.as_value().eq(Mux(front.step, front.a.as_value(), engine.a.as_value())),
        array.w.as_value().eq(Mux(front.step, front.w, engine.w.as_value())),
        array.step.eq(engine.step | front.step),
        array.clear.eq(engine.clear | front.clear),
        array.maximum.eq(front.maximum & front.step),
        array.shadow_load.eq(engine.shadow_load),
        array.shift_row.eq(drain.shift_row),
        array.shift_col.eq(drain.shift_col),
        drain.head.eq(array.head),
        # PARAM: the ADD's address or the drain's, registers both, chosen by the ADD's read
        # enable, a register (the drain's and the ADD's control reach no block RAM address)
        param_rd.addr.eq(Mux(adds.param_en, adds.param_addr, drain.param_addr)),
        drain.param_data.eq(param_rd.data), adds.param_data.eq(param_rd.data),
    ]

    # The drain unit: an ADD starts when the engine and the drain are both free.
    wiring.connect(m, engine.o_drain, drain.i_cmd)
    drain_start = engine.o_drain.valid & drain.i_cmd.ready
    # (a CONV taken meanwhile waits at the engine: ConvFront reads nothing before acceptance)
    m.d.comb += adds.unit_free.eq(~engine.busy & ~drain.busy & ~drain_start)

    # Host writes; the drain's or the ADD's write-back takes the ACT write port first.
    host_write = Signal()
    unit_write = drain.wr_en | adds.wr_en
    unit_addr = Mux(drain.wr_en, drain.wr_addr, adds.wr_addr)
    unit_data = Mux(drain.wr_en, drain.wr_data, adds.wr_data)
    pending = Signal()                       # write-backs wait in the buffer (spram only)
    if spram:
        # The single port: a write-back waits for a cycle without an ACT read.
        reading = (engine.act_issue | front.bank_en.any() | adds.act_en | core.read.en)
        m.d.comb += [act.rd_en.eq(engine.act_issue | adds.act_en | core.read.en),
                     wgt_rd.en.eq(engine.act_issue | front.wgt_en)]
        entry = len(unit_addr) + len(unit_data)
        m.submodules.writes = writes = fifo.SyncFIFO(width=entry,
                                                     depth=2 * config.cols)
        through = unit_write & ~writes.r_rdy & ~reading
        m.d.comb += [
            writes.w_data.eq(Cat(unit_addr, unit_data)),
            writes.w_en.eq(unit_write & ~through),
            writes.r_en.eq(~reading),
            pending.eq(writes.r_rdy),
            act.wr_en.eq((writes.r_rdy & ~reading) | through |
                         (host_write & (core.write.buffer == isa.Buffer.ACT))),
            act.wr_addr.eq(Mux(writes.r_rdy, writes.r_data[:len(unit_addr)],
                               Mux(through, unit_addr, core.write.addr))),
            act.wr_data.eq(Mux(writes.r_rdy, writes.r_data[len(unit_addr):],
                               Mux(through, unit_data, core.write.data[:act_bits]))),
            core.write.ready.eq(~unit_write & ~writes.r_rdy),
        ]
        if platform is None:
            # simulation only (a $check cell would reach the netlist of a build)
            with m.If(writes.w_en & ~writes.w_rdy):
                m.d.comb += Assert(0, "the ACT write-back buffer overflowed (hw/core_cnn.py)")
    else:
        # Only ACT writes wait for a write-back: WGT, PARAM and the LUT have their own write
        # ports, and their enables come from the sequencer's write registers alone (not through
        # the drain's and the ADD's `wr_en`, which would reach all of WGT's block RAMs, spread
        # over the die on the ULX3S-85F, through a LUT: measured after placement).
        m.d.comb += [
            act.wr_en.eq(unit_write | (host_write & (core.write.buffer == isa.Buffer.ACT))),
            act.wr_addr.eq(Mux(unit_write, unit_addr, core.write.addr)),
            act.wr_data.eq(Mux(unit_write, unit_data, core.write.data[:act_bits])),
            core.write.ready.eq(~unit_write | (core.write.buffer != isa.Buffer.ACT)),
        ]
    m.d.comb += host_write.eq(core.write.en & core.write.ready)
    # (on block RAM a write of another buffer than ACT is always ready: its enable is `en`)
    host_buffer_writes(m, core, host_write if spram else core.write.en, wgt_wr, param_wr,
                       postproc)

    m.d.comb += core.idle.eq(~engine.busy & ~drain.busy & ~front.busy & ~adds.busy & ~pending)
    wiring.connect(m, engine.events, wiring.flipped(core.events))
    return m
