# amaranth: UnusedElaboratable=no
"""hw/ports.py, hw/payload.py and the executor's blocks: signatures, widths, and the cursor.

The internal buses are declared once as ``wiring.Signature`` classes; these tests pin their
members and widths per configuration, that both ends of every bus in the accelerator are the
same signature, and the payload cursor against a model of its registers.
"""

import importlib

import pytest
from amaranth.hdl import Shape
from amaranth.lib import wiring
from amaranth.sim import Simulator

from tessera.hw.core import Core
from tessera.hw.counters import CountersSignature, EventSignature, PerfCounters
from tessera.hw.executor import Executor
from tessera.hw.link import FrameReceiver
from tessera.hw.payload import CursorSignature, PayloadReader, byte_count_width
from tessera.hw.ports import ReadSignature, WriteSignature, write_width
from tessera.hw.requests import RequestHandler
from tessera.hw.sequencer import ProgramSequencer, ProgramSignature
from tessera.spec import AcceleratorConfig, isa

CONFIG = AcceleratorConfig(rows=2, cols=2, act_depth=32, weight_depth=32, param_depth=8,
                           max_payload=64, rx_timeout_cycles=64)
WIDE = AcceleratorConfig(rows=8, cols=16, input_bits=4, weight_bits=8, max_payload=4096)


def _members(signature):
    return {name: (member.flow, Shape.cast(member.shape).width)
            for name, member in signature.members.items()}


def test_read_and_write_signatures_follow_the_configuration():
    act = ReadSignature.for_act(WIDE)
    assert _members(act) == {"en": (wiring.Out, 1), "addr": (wiring.Out, 16),
                             "data": (wiring.In, 8 * WIDE.act_entry_bytes)}
    assert (act.addr_width, act.data_width) == (16, 32)
    frame = ReadSignature.for_frame_buffer(WIDE)
    assert (frame.addr_width, frame.data_width) == (12, 8)      # 4096 payload bytes
    assert ReadSignature.for_frame_buffer(AcceleratorConfig(max_payload=65)).addr_width == 7
    write = WriteSignature.for_config(WIDE)
    assert _members(write) == {"en": (wiring.Out, 1), "buffer": (wiring.Out, 2),
                               "addr": (wiring.Out, 16), "data": (wiring.Out, 128),
                               "ready": (wiring.In, 1)}
    assert write.data_width == write_width(WIDE) == 128
    assert write_width(CONFIG) == 72                            # the PARAM entry is widest


def test_signatures_compare_by_parameters():
    assert ReadSignature(addr_width=4, data_width=8) == ReadSignature(addr_width=4, data_width=8)
    assert ReadSignature(addr_width=4, data_width=8) != ReadSignature(addr_width=5, data_width=8)
    assert ReadSignature(addr_width=4, data_width=8) != ReadSignature(addr_width=4, data_width=9)
    assert WriteSignature(data_width=72) == WriteSignature.for_config(CONFIG)
    assert WriteSignature(data_width=72) != WriteSignature(data_width=80)
    assert len({ReadSignature(addr_width=4, data_width=8),
                ReadSignature(addr_width=4, data_width=8)}) == 1
    assert repr(ReadSignature(addr_width=4, data_width=8)) == \
        "ReadSignature(addr_width=4, data_width=8)"
    assert repr(WriteSignature(data_width=72)) == "WriteSignature(data_width=72)"
    assert CursorSignature(CONFIG) == CursorSignature(CONFIG) != CursorSignature(WIDE)
    assert ProgramSignature(CONFIG) == ProgramSignature(CONFIG) != ProgramSignature(WIDE)
    assert EventSignature(CONFIG) == EventSignature(CONFIG) != EventSignature(WIDE)
    assert CountersSignature(CONFIG) != CountersSignature(
        AcceleratorConfig(counter_bits=CONFIG.counter_bits + 8))


@pytest.mark.parametrize("make, message", [
    (lambda: ReadSignature(addr_width=0, data_width=8),
     "Address width must be a positive integer, not 0"),
    (lambda: ReadSignature(addr_width=4, data_width=True),
     "Data width must be a positive integer, not True"),
    (lambda: WriteSignature(data_width=-8),
     "Data width must be a positive integer, not -8"),
])
def test_signature_parameters_are_checked(make, message):
    with pytest.raises(TypeError, match=f"^{message}$"):
        make()


@pytest.mark.parametrize("config", [CONFIG, WIDE], ids=["2x2", "8x16-a4w8"])
def test_both_ends_of_every_bus_are_one_signature(config):
    executor, core, receiver = Executor(config), Core(config), FrameReceiver(config)
    perf = PerfCounters(config)
    ends = [
        (executor, "write", core, "write"),
        (executor, "read", core, "read"),
        (executor, "frame_buf", receiver, "frame_buf"),
        (core, "events", perf, "events"),
        (perf, "counters", executor, "counters"),
        (RequestHandler(config), "program", ProgramSequencer(config), "program"),
        (PayloadReader(config), "cursor", RequestHandler(config), "cursor"),
        (PayloadReader(config), "cursor", ProgramSequencer(config), "cursor"),
    ]
    for out_side, out_name, in_side, in_name in ends:
        out_member = out_side.signature.members[out_name]
        in_member = in_side.signature.members[in_name]
        assert out_member.flow == wiring.Out and in_member.flow == wiring.In
        # an In member's signature is the flipped one
        assert out_member.signature == in_member.signature.flip(), (out_name, in_name)
    pos = CursorSignature(config).members["pos"]
    assert Shape.cast(pos.shape).width == byte_count_width(config)


@pytest.mark.parametrize("module", ["ports", "payload", "requests", "sequencer", "executor",
                                    "counters", "core", "top"])
def test_every_exported_name_resolves(module):
    mod = importlib.import_module(f"tessera.hw.{module}")
    assert mod.__all__ and all(hasattr(mod, name) for name in mod.__all__)


def test_payload_cursor_matches_its_model():
    # Seek, then take at an irregular pace through lengths around an instruction (16 bytes):
    # `rest` and its flags are registers, so they must track `pos` exactly, in every cycle,
    # and the read address must lead `pos` by one (offset 0 after a seek).
    dut = PayloadReader(CONFIG)
    seen = []

    async def testbench(ctx):
        for length in (0, 1, 15, 16, 17, 33, CONFIG.max_payload):
            ctx.set(dut.seek, 1)
            ctx.set(dut.length, length)
            ctx.set(dut.take, 0)
            assert (ctx.get(dut.frame_buf.en), ctx.get(dut.frame_buf.addr)) == (1, 0)
            await ctx.tick()
            ctx.set(dut.seek, 0)
            pos, cycle = 0, 0
            while pos < length or cycle < 3:
                take = cycle % 3 != 1 and pos < length
                ctx.set(dut.take, take)
                assert ctx.get(dut.frame_buf.en) == take
                if take:
                    assert ctx.get(dut.frame_buf.addr) == (pos + 1) % (1 << 6)
                cursor, rest = dut.cursor, length - pos
                state = (ctx.get(cursor.pos), ctx.get(cursor.rest), ctx.get(cursor.rest_zero),
                         ctx.get(cursor.rest_short), ctx.get(cursor.rest_whole))
                assert state == (pos, rest, rest == 0, rest < isa.INSN_BYTES,
                                 rest >= isa.INSN_BYTES), (length, cycle)
                seen.append((length, pos))
                await ctx.tick()
                pos, cycle = pos + take, cycle + 1
            ctx.set(dut.take, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert (33, 32) in seen and (0, 0) in seen and (64, 63) in seen


def test_payload_window_holds_the_last_sixteen_bytes():
    dut = PayloadReader(CONFIG)
    stream = [(13 * i + 1) & 0xFF for i in range(40)]

    async def testbench(ctx):
        for i, value in enumerate(stream):
            ctx.set(dut.frame_buf.data, value)
            await ctx.tick()
            last = stream[max(0, i - 15):i + 1]
            expected = int.from_bytes(bytes([0] * (16 - len(last)) + last), "little")
            assert ctx.get(dut.cursor.window) == expected, i

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
