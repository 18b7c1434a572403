"""The executor: answers verified requests and runs ``EXEC`` programs on the Core.

``Executor(config)`` joins three blocks with :func:`wiring.connect`:

- the :class:`~tessera.hw.payload.PayloadReader`, the one reader of the received payload in the
  frame buffer, shown to the other two as a :class:`~tessera.hw.payload.CursorSignature`;
- the :class:`~tessera.hw.requests.RequestHandler`: frame dispatch (``HELLO``, ``EXEC``,
  ``READ``, ``COUNTERS``, ``CLEAR_COUNTERS``, link errors), the ``EXEC`` dedup and answer, and
  response serialisation, including the ACT reads of ``READ`` and ``STORE``;
- the :class:`~tessera.hw.sequencer.ProgramSequencer`: the instruction loop (fetch, decode
  and checks, ``LOAD`` gather, ``GEMM``/``POST``/``SYNC``/``STORE``; with ``config.cnn`` also
  ``WINDOW``, and ``CONV``/``ADD`` issued to the Core on ``o_conv``/``o_add``), started by the
  handler on a :class:`~tessera.hw.sequencer.ProgramSignature` port that reports how the
  program ended.

A new request kind touches the handler; a new opcode the sequencer (and its checks,
:mod:`tessera.hw.decoder`). The executor's timing is the emulator's cycle model
(``docs/architecture.md``); the modules above give it cycle by cycle.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .cnn_issue import add_issue, conv_issue
from .counters import CountersSignature
from .gemm import gemm_command
from .link import FRAME_INFO, RESPONSE_HEADER
from .payload import PayloadReader
from .ports import ReadSignature, WriteSignature
from .requests import RequestHandler
from .sequencer import ProgramSequencer

__all__ = ["Executor"]


class Executor(wiring.Component):
    """Request handling, program execution and responses.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    i_frame : In(stream.Signature(FRAME_INFO))
        Received frames; accepted once the payload has been used (the receiver holds it).
    frame_buf : Out(ReadSignature.for_frame_buffer(config))
        The frame receiver's buffer (data valid the cycle after ``en``, held while ``en`` is
        low).
    o_resp : Out(stream.Signature(RESPONSE_HEADER))
        Response header, then ``length`` bytes on ``o_payload``.
    o_payload : Out(stream.Signature(8))
    o_cmd : Out(stream.Signature(gemm_command(config)))
        GEMM commands to the Core, with the post state current at issue.
    core_idle : In(1)
        The Core is idle (seen a cycle late, through a register).
    write : Out(WriteSignature.for_config(config))
        ``LOAD`` entries through the Core's host write port.
    read : Out(ReadSignature.for_act(config))
        ACT reads through the Core's host read port (only while the Core is idle).
    counters : In(CountersSignature(config))
        The performance counters (``protocol.COUNTER_NAMES`` order) and their clear.
    busy : Out(1)
        A request is being handled or answered.
    o_conv : Out(stream.Signature(conv_issue(config)))
        ``cnn`` only: checked ``CONV`` instructions to the Core (:mod:`tessera.hw.cnn_issue`).
    o_add : Out(stream.Signature(add_issue(config)))
        ``cnn`` only: checked ``ADD`` instructions to the Core.
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "i_frame": In(stream.Signature(FRAME_INFO)),
            "frame_buf": Out(ReadSignature.for_frame_buffer(config)),
            "o_resp": Out(stream.Signature(RESPONSE_HEADER)),
            "o_payload": Out(stream.Signature(8)),
            "o_cmd": Out(stream.Signature(gemm_command(config))),
            "core_idle": In(1),
            "write": Out(WriteSignature.for_config(config)),
            "read": Out(ReadSignature.for_act(config)),
            "counters": In(CountersSignature(config)),
            "busy": Out(1),
            **({"o_conv": Out(stream.Signature(conv_issue(config))),
                "o_add": Out(stream.Signature(add_issue(config)))} if config.cnn else {}),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.submodules.reader = reader = PayloadReader(cfg)
        m.submodules.requests = requests = RequestHandler(cfg)
        m.submodules.sequencer = sequencer = ProgramSequencer(cfg)

        wiring.connect(m, reader.frame_buf, wiring.flipped(self.frame_buf))
        wiring.connect(m, reader.cursor, requests.cursor, sequencer.cursor)
        wiring.connect(m, requests.program, sequencer.program)
        wiring.connect(m, wiring.flipped(self.i_frame), requests.i_frame)
        wiring.connect(m, requests.o_resp, wiring.flipped(self.o_resp))
        wiring.connect(m, requests.o_payload, wiring.flipped(self.o_payload))
        wiring.connect(m, requests.read, wiring.flipped(self.read))
        wiring.connect(m, wiring.flipped(self.counters), requests.counters)
        wiring.connect(m, sequencer.o_cmd, wiring.flipped(self.o_cmd))
        wiring.connect(m, sequencer.write, wiring.flipped(self.write))
        if cfg.cnn:
            wiring.connect(m, sequencer.o_conv, wiring.flipped(self.o_conv))
            wiring.connect(m, sequencer.o_add, wiring.flipped(self.o_add))
        m.d.comb += [
            reader.seek.eq(requests.seek),
            reader.length.eq(requests.length),
            reader.take.eq(requests.take | sequencer.take),
            sequencer.core_idle.eq(self.core_idle),
            self.busy.eq(requests.busy),
        ]
        return m
