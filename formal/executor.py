"""The executor's world for the solver, and "no program writes outside a buffer".

The harness is the real :class:`~tessera.hw.executor.Executor` and the real
:class:`~tessera.hw.link.FrameSender` (whose ``o`` is always ready, as the UART or the
simulation bridge is), in an environment the solver plays (:func:`executor_environment`):

- the received frame: any descriptor the :class:`~tessera.hw.link.FrameReceiver` can hand
  over (status ``OK``, ``BAD_CRC`` or ``BAD_LENGTH``; a length of at most ``max_payload`` unless
  ``BAD_LENGTH``, which ``formal/receiver.py`` proves of the receiver), offered under the stream
  rules;
- the payload: every byte the executor reads from the frame buffer is free, so every program
  of every length, every opcode and every field value is covered (and more: a byte read twice
  may differ);
- the Core: ``o_cmd.ready``, ``write.ready`` and ``core_idle`` (and ``o_conv.ready``,
  ``o_add.ready`` with ``cnn``) are free, except that none stays low for more than
  :data:`CORE_WAIT` cycles in a row (the Core finishes its work: its own bound is the cycle
  model of ``docs/architecture.md``); read data and counters are free.

In bounds (:func:`assert_in_bounds`): a ``write`` goes to an existing buffer below its depth
(``LUT`` below 256, only if built); a ``read`` below ``act_depth``; a frame-buffer read below
``max_payload``; a GEMM command has ``1 <= k``, ``1 <= m_rows <= rows``, ``1 <= n_cols <= cols``
and ``a_addr + k``, ``w_addr + k``, ``out_addr + n_cols``, ``param_addr + n_cols`` within their
buffers. :func:`executor_requests` checks it by a bounded proof on a small frame buffer; the
k-induction of :mod:`formal.answers` proves it, with the no-wedge bound, in every reachable
state of a legal configuration.
"""

import copy

from amaranth.hdl import Assert, Assume, Signal
from amaranth.lib import wiring

from tessera.hw.executor import Executor
from tessera.hw.link import FrameSender
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.protocol import Status

from .bench import FormalBench, stream_rules
from .probe import Probe

__all__ = ["BOUNDS_CONFIG", "BOUNDS_DEPTH", "CORE_WAIT", "assert_in_bounds",
           "executor_environment", "executor_requests", "small_config"]


def small_config(max_payload=32):
    """Return a 2x2 configuration with small buffers and a ``max_payload``-byte frame buffer.

    ``AcceleratorConfig`` asks for at least 64 payload bytes (a ``LOAD`` of full entries must
    fit); the gateware elaborates for less, and a smaller frame shortens every request, so a
    bounded proof covers whole requests. The field is set past the check, on a copy. (The
    k-induction of :mod:`formal.answers` needs no such shortcut: it uses a legal configuration.)
    """
    config = copy.copy(AcceleratorConfig(rows=2, cols=2, act_depth=16, weight_depth=16,
                                         param_depth=8))
    object.__setattr__(config, "max_payload", max_payload)
    return config


#: The configuration of the bounded in-bounds check: 32-byte frames, so a ``LOAD`` carries
#: entries (up to 8 ACT or WGT entries, or one PARAM entry) or two instructions follow each
#: other.
BOUNDS_CONFIG = small_config(32)

#: Depth of the bounded in-bounds check: a ``LOAD`` of two entries written, or a ``GEMM``
#: issued after another instruction.
BOUNDS_DEPTH = 40

#: Longest run of cycles the abstract Core keeps ``o_cmd.ready``, ``write.ready`` or
#: ``core_idle`` low.
CORE_WAIT = 1


def _bounded_low(bench, signal, limit, name):
    # The environment never holds `signal` low for more than `limit` cycles in a row.
    run = Signal(range(limit + 2), name=f"{name}_low_run")
    with bench.m.If(signal):
        bench.m.d.sync += run.eq(0)
    with bench.m.Elif(run <= limit):
        bench.m.d.sync += run.eq(run + 1)
    bench.m.d.comb += Assume(signal | (run < limit))


def executor_environment(config, executor_class=Executor, *, core_wait=CORE_WAIT):
    """Return ``(bench, dut, sender, frame_history)``: the executor in its solver-played world.

    ``dut`` and ``sender`` are :class:`~formal.probe.Probe` objects around the
    :class:`~tessera.hw.executor.Executor` and the :class:`~tessera.hw.link.FrameSender` (their
    ``design`` attribute is the component), so that invariants can name internal registers;
    ``frame_history`` holds the previous step of ``i_frame`` (:func:`formal.bench.stream_rules`).
    The Core keeps none of its handshakes low for more than ``core_wait`` cycles in a row.
    """
    bench = FormalBench()
    m = bench.m
    executor = executor_class(config)
    sender = FrameSender()
    wiring.connect(m, executor.o_resp, sender.i_start)
    wiring.connect(m, executor.o_payload, sender.i_payload)
    m.d.comb += sender.o.ready.eq(1)
    m.submodules.dut = dut = Probe(executor)
    m.submodules.sender = sender_probe = Probe(sender)

    frame = executor.i_frame
    for port, name in ((frame.valid, "frame_valid"), (frame.payload, "frame")):
        bench.free(port, name=name)
    history = stream_rules(bench, frame, check=Assume, name="i_frame")
    info = frame.payload
    oversized = info.status == Status.BAD_LENGTH
    m.d.comb += Assume(~frame.valid | (info.status == Status.OK) |
                       (info.status == Status.BAD_CRC) | oversized)
    m.d.comb += Assume(~frame.valid | (oversized == (info.length > config.max_payload)))

    bench.free(executor.frame_buf.data, name="frame_byte")
    bench.free(executor.read.data, name="act_data")
    bench.free(executor.counters.values, name="counter_values")
    handshakes = [(executor.o_cmd.ready, "cmd_ready"), (executor.write.ready, "write_ready"),
                  (executor.core_idle, "core_idle")]
    if config.cnn:   # CONV and ADD are issued to the Core like GEMM commands
        handshakes += [(executor.o_conv.ready, "conv_ready"), (executor.o_add.ready, "add_ready")]
    for port, name in handshakes:
        _bounded_low(bench, bench.free(port, name=name), core_wait, name)
    return bench, dut, sender_probe, history


def assert_in_bounds(bench, executor, config):
    """Assert that ``executor`` writes, reads and issues only within its buffers."""
    depths = {isa.Buffer.ACT: config.act_depth, isa.Buffer.WGT: config.weight_depth,
              isa.Buffer.PARAM: config.param_depth}
    if config.lut:
        depths[isa.Buffer.LUT] = 256
    write = executor.write
    in_buffer = 0
    for buffer, depth in depths.items():
        in_buffer = in_buffer | ((write.buffer == buffer) & (write.addr < depth))
    cmd = executor.o_cmd.payload
    bench.m.d.comb += [
        Assert(~write.en | in_buffer, "write outside a buffer"),
        Assert(~executor.read.en | (executor.read.addr < config.act_depth),
               "ACT read past act_depth"),
        Assert(~executor.frame_buf.en | (executor.frame_buf.addr < config.max_payload),
               "frame-buffer read past max_payload"),
        Assert(~executor.o_cmd.valid | (
            (cmd.k >= 1) & (cmd.m_rows >= 1) & (cmd.m_rows <= config.rows) &
            (cmd.n_cols >= 1) & (cmd.n_cols <= config.cols) &
            (cmd.a_addr + cmd.k <= config.act_depth) &
            (cmd.w_addr + cmd.k <= config.weight_depth) &
            (cmd.out_addr + cmd.n_cols <= config.act_depth) &
            (cmd.param_addr + cmd.n_cols <= config.param_depth)), "GEMM command out of bounds"),
    ]


def executor_requests(*, config=BOUNDS_CONFIG, executor_class=Executor):
    """Return ``(bench, BOUNDS_DEPTH)``: the in-bounds properties, for a bounded proof."""
    bench, dut, _, _ = executor_environment(config, executor_class)
    assert_in_bounds(bench, dut.design, config)
    return bench, BOUNDS_DEPTH
