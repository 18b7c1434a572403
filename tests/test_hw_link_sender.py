"""hw/link.py: FrameSender output equals spec.protocol.encode_frame, under backpressure."""

import random

from amaranth.sim import Simulator

from tessera.hw.link import FrameSender
from tessera.spec.protocol import Kind, Status, encode_frame


def _send(frames, *, stall_probability=0.0, seed=0):
    """Send ``frames`` ((kind, seq, payload) tuples); return the bytes and busy per cycle."""
    dut = FrameSender()
    rng = random.Random(seed)
    out, busy_trace = bytearray(), []
    done = []

    async def producer(ctx):
        for kind, seq, payload in frames:
            ctx.set(dut.i_start.valid, 1)
            ctx.set(dut.i_start.payload, {"kind": kind, "seq": seq, "length": len(payload)})
            await ctx.tick().until(dut.i_start.ready)
            ctx.set(dut.i_start.valid, 0)
            for byte in payload:
                # A producer may also be slow: insert idle cycles on the payload stream.
                while rng.random() < stall_probability:
                    ctx.set(dut.i_payload.valid, 0)
                    await ctx.tick()
                ctx.set(dut.i_payload.valid, 1)
                ctx.set(dut.i_payload.payload, byte)
                await ctx.tick().until(dut.i_payload.ready)
            ctx.set(dut.i_payload.valid, 0)
            await ctx.tick().until(~dut.busy)
        done.append(True)

    async def consumer(ctx):
        while not done:
            ready = rng.random() >= stall_probability
            ctx.set(dut.o.ready, ready)
            await ctx.tick()
            busy_trace.append(ctx.get(dut.busy))
            # Sample the transfer of the cycle just finished.
        return

    async def monitor(ctx):
        async for clk_edge, rst, valid, ready, payload in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload):
            if done:
                return
            if valid and ready:
                out.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_process(monitor)
    sim.run()
    return bytes(out), busy_trace


def test_frames_equal_encode_frame():
    rng = random.Random(3)
    frames = [(Status.OK, 0, b""), (Status.BAD_OPCODE, 255, b"\x20\x00\x07\x00"),
              (Status.OK, 17, bytes(rng.randrange(256) for _ in range(100)))]
    out, _ = _send(frames)
    assert out == b"".join(encode_frame(*f) for f in frames)


def test_backpressure_and_slow_payload():
    rng = random.Random(4)
    frames = [(Kind.EXEC, i, bytes(rng.randrange(256) for _ in range(rng.randrange(30))))
              for i in range(6)]
    out, busy = _send(frames, stall_probability=0.4, seed=9)
    assert out == b"".join(encode_frame(*f) for f in frames)
    assert busy[-1] == 0
