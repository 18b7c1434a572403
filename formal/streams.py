"""Stream handshake rules of the link's and the PostProcessor's streams.

Each harness wraps one component from the outside: its input streams are driven by the solver
under the transmitter rules (``Assume``), its output streams are checked against them
(``Assert``), every ``ready`` and every other input is free. The proofs are by k-induction, so
they hold in every reachable state, not only in the first ``depth`` steps.

- ``FrameReceiver.o_frame`` (the descriptor held until the executor takes it);
- ``FrameSender.o`` (header, pass-through payload, CRC: one valid byte held until taken);
- ``UARTReceiver.o`` (a received byte held until taken; an overrun drops the new one);
- ``PostProcessor.o``, with the post state carried in registers and in a block RAM
  (``delay_ram``, the iCE40 variant).
"""

from types import SimpleNamespace

from amaranth.hdl import Assume

from tessera.hw.link import FrameReceiver, FrameSender
from tessera.hw.postproc import PostProcessor
from tessera.hw.uart import MIN_DIVISOR, UARTReceiver
from tessera.spec import AcceleratorConfig

from .bench import FormalBench, stream_rules

__all__ = ["receiver_frames", "sender_bytes", "postproc_results", "uart_bytes", "link_config",
           "POSTPROC_CONFIG"]

#: The PostProcessor's configuration: both requant modes, the LUT, 8-bit operands.
POSTPROC_CONFIG = AcceleratorConfig(rows=2, cols=2, act_depth=16, weight_depth=16,
                                    param_depth=8)


def link_config(*, max_payload=8, rx_timeout_cycles=4):
    """Return the two fields a :class:`FrameReceiver` reads, at proof-friendly sizes.

    ``AcceleratorConfig`` refuses a ``max_payload`` below 64 and a timeout below 16 cycles; the
    receiver's logic does not depend on either beyond its counter widths, and the small values
    keep the induction short (a frame is at most ``max_payload + 8`` bytes).
    """
    return SimpleNamespace(max_payload=max_payload, rx_timeout_cycles=rx_timeout_cycles)


def _drive_inputs(bench, component, skip):
    # Every input port of `component` not in `skip` becomes a free input.
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(part) for part in path)
        if member.flow.name == "In" and name not in skip:
            bench.free(value, name=name)


def receiver_frames(receiver_class=FrameReceiver):
    """Return ``(bench, depth)``: ``FrameReceiver.o_frame`` obeys the stream rules."""
    bench = FormalBench()
    bench.m.submodules.dut = dut = receiver_class(link_config())
    _drive_inputs(bench, dut, skip={"i__valid", "i__payload"})
    bench.free(dut.i.valid, name="i__valid")
    bench.free(dut.i.payload, name="i__payload")
    stream_rules(bench, dut.i, check=Assume, name="i")
    stream_rules(bench, dut.o_frame, name="o_frame")
    # the base case reaches a whole (empty) frame: 8 bytes, then the descriptor
    return bench, 12


def sender_bytes(sender_class=FrameSender):
    """Return ``(bench, depth)``: ``FrameSender.o`` obeys the rules if its inputs do."""
    bench = FormalBench()
    bench.m.submodules.dut = dut = sender_class()
    _drive_inputs(bench, dut, skip=set())
    stream_rules(bench, dut.i_start, check=Assume, name="i_start")
    stream_rules(bench, dut.i_payload, check=Assume, name="i_payload")
    stream_rules(bench, dut.o, name="o")
    return bench, 4


def postproc_results(*, delay_ram=False, postproc_class=PostProcessor):
    """Return ``(bench, depth)``: ``PostProcessor.o`` obeys the rules if ``i`` does."""
    bench = FormalBench()
    bench.m.submodules.dut = dut = postproc_class(POSTPROC_CONFIG, delay_ram=delay_ram)
    _drive_inputs(bench, dut, skip=set())
    stream_rules(bench, dut.i, check=Assume, name="i")
    stream_rules(bench, dut.o, name="o")
    # the base case reaches results: the pipeline is PostProcessor.latency deep
    return bench, PostProcessor.latency + 4



def uart_bytes(receiver_class=UARTReceiver):
    """Return ``(bench, depth)``: ``UARTReceiver.o`` obeys the stream rules, any line input."""
    bench = FormalBench()
    bench.m.submodules.dut = dut = receiver_class(divisor=MIN_DIVISOR)
    _drive_inputs(bench, dut, skip=set())
    stream_rules(bench, dut.o, name="o")
    # the base case reaches a whole character: 2 synchroniser, 10 bits of 4 cycles
    return bench, 48
