"""No program, however malformed, makes the executor write outside a buffer or wedge.

The harness is the real :class:`~tessera.hw.executor.Executor` and the real
:class:`~tessera.hw.link.FrameSender` (whose ``o`` is always ready, as the UART or the
simulation bridge is), in an environment the solver plays:

- the received frame: any descriptor the :class:`~tessera.hw.link.FrameReceiver` can hand
  over (status ``OK``, ``BAD_CRC`` or ``BAD_LENGTH``; a length of at most ``max_payload`` unless
  ``BAD_LENGTH``, which ``formal/receiver.py`` proves of the receiver), offered under the stream
  rules and only while the previous request is answered (the host's stop-and-wait);
- the payload: every byte the executor reads from the frame buffer is free, so every program
  of every length, every opcode and every field value is covered (and more: a byte read twice
  may differ);
- the Core: ``o_cmd.ready``, ``write.ready`` and ``core_idle`` are free, except that none stays
  low for more than :data:`CORE_WAIT` cycles in a row (the Core finishes its work: its own
  bound is the cycle model of ``docs/architecture.md``); read data and counters are free.

Properties (``Assert``):

- in bounds: a ``write`` goes to an existing buffer below its depth (``LUT`` below 256, only if
  built); a ``read`` below ``act_depth``; a frame-buffer read below ``max_payload``; a GEMM
  command has ``1 <= k``, ``1 <= m_rows <= rows``, ``1 <= n_cols <= cols`` and ``a_addr + k``,
  ``w_addr + k``, ``out_addr + n_cols``, ``param_addr + n_cols`` within their buffers;
- no wedge: a request is answered (one response header on ``o_resp``) and the executor and the
  sender are idle again at most :func:`answer_bound` cycles after its descriptor is offered.
"""

import copy

from amaranth.hdl import Assert, Assume, Signal
from amaranth.lib import wiring

from tessera.hw.executor import Executor
from tessera.hw.link import FrameSender
from tessera.hw.payload import COUNTER_BYTES
from tessera.spec import AcceleratorConfig, isa, protocol
from tessera.spec.protocol import Status

from .bench import FormalBench, stream_rules

__all__ = ["BOUNDS_CONFIG", "BOUNDS_DEPTH", "EXECUTOR_CONFIG", "CORE_WAIT", "answer_bound", "executor_requests", "small_config"]

def small_config(max_payload=16):
    """Return a 2x2 configuration with small buffers and a ``max_payload``-byte frame buffer.

    ``AcceleratorConfig`` asks for at least 64 payload bytes (a ``LOAD`` of full entries must
    fit); the gateware elaborates for less, and a smaller frame shortens every request, so a
    bounded proof covers whole requests. The field is set past the check, on a copy.
    """
    config = copy.copy(AcceleratorConfig(rows=2, cols=2, act_depth=16, weight_depth=16,
                                         param_depth=8))
    object.__setattr__(config, "max_payload", max_payload)
    return config


#: The configuration of the no-wedge proof: a 2x2 array, 16-byte frames (one instruction).
EXECUTOR_CONFIG = small_config()

#: The configuration of the in-bounds proof: 32-byte frames, so a ``LOAD`` carries entries
#: (up to 8 ACT or WGT entries, or one PARAM entry) or two instructions follow each other.
BOUNDS_CONFIG = small_config(32)

#: Depth of the in-bounds proof: a ``LOAD`` of two entries written, or a ``GEMM`` issued after
#: another instruction.
BOUNDS_DEPTH = 40

#: Longest run of cycles the abstract Core keeps ``o_cmd.ready``, ``write.ready`` or
#: ``core_idle`` low.
CORE_WAIT = 1

#: Cycles the executor may spend beyond the bytes and waits counted by :func:`answer_bound`:
#: taking the descriptor, the decode pipeline, the hand-over to the sender and back to idle.
OVERHEAD_CYCLES = 16


def answer_bound(config, core_wait=CORE_WAIT):
    """Return the cycles from a descriptor's offer until the executor and sender are idle.

    The executor reads each payload byte once (one cycle each: ``max_payload``) and waits at
    most ``core_wait + 2`` cycles (the wait, the registered ``idle``, the step on) for each
    Core handshake: one per instruction, one per ``LOAD`` entry and one at the end of the
    program. The sender then sends a 6-byte header, the response payload (at most the largest
    of ``max_payload``, the 48 counter bytes and the ID record) and the 2-byte CRC, one byte a
    cycle; :data:`OVERHEAD_CYCLES` cover the hand-overs.
    """
    instructions = config.max_payload // isa.INSN_BYTES
    entries = max(0, config.max_payload - isa.INSN_BYTES)
    handshakes = instructions + entries + 1
    response = max(config.max_payload, COUNTER_BYTES * len(protocol.COUNTER_NAMES),
                   protocol.ID_LAYOUT.nbytes)
    return (config.max_payload + (core_wait + 2) * handshakes
            + protocol.HEADER_BYTES + response + protocol.TRAILER_BYTES + OVERHEAD_CYCLES)


def _bounded_low(bench, signal, limit, name):
    # The environment never holds `signal` low for more than `limit` cycles in a row.
    run = Signal(range(limit + 2), name=f"{name}_low_run")
    with bench.m.If(signal):
        bench.m.d.sync += run.eq(0)
    with bench.m.Elif(run <= limit):
        bench.m.d.sync += run.eq(run + 1)
    bench.m.d.comb += Assume(signal | (run < limit))


def executor_requests(*, config=EXECUTOR_CONFIG, executor_class=Executor, bound=None,
                      answers=True):
    """Return ``(bench, depth)``: the in-bounds and (if ``answers``) no-wedge properties.

    ``depth`` is the bound plus two: a bounded proof of that depth covers a whole request.
    """
    bench = FormalBench()
    m = bench.m
    m.submodules.dut = dut = executor_class(config)
    m.submodules.sender = sender = FrameSender()
    wiring.connect(m, dut.o_resp, sender.i_start)
    wiring.connect(m, dut.o_payload, sender.i_payload)
    m.d.comb += sender.o.ready.eq(1)

    frame = dut.i_frame
    for port, name in ((frame.valid, "frame_valid"), (frame.payload, "frame")):
        bench.free(port, name=name)
    stream_rules(bench, frame, check=Assume, name="i_frame")
    info = frame.payload
    oversized = info.status == Status.BAD_LENGTH
    m.d.comb += Assume(~frame.valid | (info.status == Status.OK) |
                       (info.status == Status.BAD_CRC) | oversized)
    m.d.comb += Assume(~frame.valid | (oversized == (info.length > config.max_payload)))

    bench.free(dut.frame_buf.data, name="frame_byte")
    bench.free(dut.read.data, name="act_data")
    bench.free(dut.counters.values, name="counter_values")
    for port, name in ((dut.o_cmd.ready, "cmd_ready"), (dut.write.ready, "write_ready"),
                       (dut.core_idle, "core_idle")):
        _bounded_low(bench, bench.free(port, name=name), CORE_WAIT, name)

    # -- in bounds ---------------------------------------------------------------------------
    depths = {isa.Buffer.ACT: config.act_depth, isa.Buffer.WGT: config.weight_depth,
              isa.Buffer.PARAM: config.param_depth}
    if config.lut:
        depths[isa.Buffer.LUT] = 256
    write = dut.write
    in_buffer = 0
    for buffer, depth in depths.items():
        in_buffer = in_buffer | ((write.buffer == buffer) & (write.addr < depth))
    cmd = dut.o_cmd.payload
    m.d.comb += [
        Assert(~write.en | in_buffer, "write outside a buffer"),
        Assert(~dut.read.en | (dut.read.addr < config.act_depth), "ACT read past act_depth"),
        Assert(~dut.frame_buf.en | (dut.frame_buf.addr < config.max_payload),
               "frame-buffer read past max_payload"),
        Assert(~dut.o_cmd.valid | (
            (cmd.k >= 1) & (cmd.m_rows >= 1) & (cmd.m_rows <= config.rows) &
            (cmd.n_cols >= 1) & (cmd.n_cols <= config.cols) &
            (cmd.a_addr + cmd.k <= config.act_depth) &
            (cmd.w_addr + cmd.k <= config.weight_depth) &
            (cmd.out_addr + cmd.n_cols <= config.act_depth) &
            (cmd.param_addr + cmd.n_cols <= config.param_depth)), "GEMM command out of bounds"),
    ]

    if not answers:
        return bench, BOUNDS_DEPTH
    # -- no wedge ----------------------------------------------------------------------------
    bound = answer_bound(config) if bound is None else bound
    working = Signal()      # a request was offered and is not answered yet
    taken = Signal()        # the executor accepted its descriptor
    answered = Signal()     # its response header went to the sender
    age = Signal(range(bound + 2))
    quiet = ~dut.busy & ~sender.busy
    m.d.comb += Assume(~frame.valid | ~taken)   # stop and wait: no new request meanwhile
    with m.If(frame.valid & ~working):
        m.d.sync += [working.eq(1), taken.eq(frame.ready), answered.eq(0), age.eq(1)]
    with m.Elif(working):
        with m.If(age <= bound):
            m.d.sync += age.eq(age + 1)
        with m.If(frame.valid & frame.ready):
            m.d.sync += taken.eq(1)
        with m.If(dut.o_resp.valid & dut.o_resp.ready):
            m.d.sync += answered.eq(1)
        with m.If(taken & quiet):
            m.d.sync += [working.eq(0), taken.eq(0)]
            m.d.comb += Assert(answered, "request finished without a response")
    m.d.comb += Assert(~working | (age <= bound), "request not answered within the bound")
    return bench, bound + 2
