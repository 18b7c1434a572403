"""hw/link.py: FrameReceiver on good, corrupted, noisy, oversized and stalled frames."""

import random

import pytest
from amaranth.sim import Simulator

from tessera.hw.link import FrameReceiver
from tessera.spec import AcceleratorConfig
from tessera.spec.protocol import SYNC, Kind, Status, encode_frame

CONFIG = AcceleratorConfig(rows=2, cols=2, act_depth=32, weight_depth=32, param_depth=8,
                           max_payload=64, rx_timeout_cycles=40)


def _receive(chunks, *, config=CONFIG, gap_probability=0.0, seed=0):
    """Feed ``chunks`` to a receiver; return its frames and the busy level after each chunk.

    ``chunks`` is a list of ``bytes`` or ``int`` (an int is a pause of that many cycles).
    Each frame is ``(status, kind, seq, payload)``; the payload is read from the frame buffer.
    """
    dut = FrameReceiver(config)
    rng = random.Random(seed)
    frames, busy_after, done = [], [], []

    async def source(ctx):
        for chunk in chunks:
            if isinstance(chunk, int):
                await ctx.tick().repeat(chunk)
            else:
                for byte in chunk:
                    while rng.random() < gap_probability:
                        ctx.set(dut.i.valid, 0)
                        await ctx.tick()
                    ctx.set(dut.i.valid, 1)
                    ctx.set(dut.i.payload, byte)
                    await ctx.tick().until(dut.i.ready)
                ctx.set(dut.i.valid, 0)
            busy_after.append(ctx.get(dut.busy))
        await ctx.tick().repeat(4)
        done.append(True)

    async def sink(ctx):
        while not done:
            await ctx.tick()
            if not ctx.get(dut.o_frame.valid):
                continue
            info = ctx.get(dut.o_frame.payload)
            payload = bytearray()
            for addr in range(info.length if info.status != Status.BAD_LENGTH else 0):
                ctx.set(dut.frame_buf.en, 1)
                ctx.set(dut.frame_buf.addr, addr)
                await ctx.tick()
                ctx.set(dut.frame_buf.en, 0)
                payload.append(ctx.get(dut.frame_buf.data))
            frames.append((Status(info.status), info.kind, info.seq, bytes(payload)))
            ctx.set(dut.o_frame.ready, 1)
            await ctx.tick()
            ctx.set(dut.o_frame.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return frames, busy_after


def test_good_frames_any_length_with_stalls():
    rng = random.Random(1)
    sent = [(Kind.EXEC, i, bytes(rng.randrange(256) for _ in range(n)))
            for i, n in enumerate([0, 1, 5, 63, 64, 17])]
    frames, busy = _receive([encode_frame(*f) for f in sent], gap_probability=0.3)
    assert frames == [(Status.OK, k, s, p) for k, s, p in sent]


def test_corrupted_payload_and_crc_give_bad_crc():
    good = encode_frame(Kind.EXEC, 3, b"\x10\x20\x30\x40")
    bad_payload = bytearray(good)
    bad_payload[7] ^= 0x04
    bad_trailer = bytearray(good)
    bad_trailer[-1] ^= 0x80
    frames, _ = _receive([bytes(bad_payload), bytes(bad_trailer), good])
    assert [f[0] for f in frames] == [Status.BAD_CRC, Status.BAD_CRC, Status.OK]
    assert frames[0][1:3] == (Kind.EXEC, 3)


def test_corrupted_header_is_skipped_and_the_next_frame_found():
    first = bytearray(encode_frame(Kind.READ, 1, b"\x00\x00\x01\x00"))
    first[3] ^= 0x01                       # length byte: header CRC-8 fails
    second = encode_frame(Kind.HELLO, 2)
    frames, _ = _receive([bytes(first), second])
    assert frames == [(Status.OK, Kind.HELLO, 2, b"")]


def test_garbage_with_false_sync_before_a_frame():
    frame = encode_frame(Kind.COUNTERS, 9, b"\xA5\xA5\x01")
    # False SYNCs whose "headers" overlap the real one: the sliding window still finds it.
    noise = bytes([0x00, SYNC, 0x13, SYNC, SYNC, 0x07, SYNC])
    frames, busy = _receive([noise, frame, bytes([SYNC, 1, 2]), frame])
    assert frames == [(Status.OK, Kind.COUNTERS, 9, b"\xA5\xA5\x01")] * 2


def test_oversized_length_is_skipped_then_reported():
    header = bytes([SYNC, Kind.EXEC, 5]) + (65).to_bytes(2, "little")
    from tessera.spec.protocol import crc8
    oversized = header + bytes([crc8(header)]) + bytes(range(65)) + b"\xA5\xA5"
    # The skipped bytes contain a complete valid frame: it must not be taken as one.
    inner = encode_frame(Kind.HELLO, 77)
    oversized = header + bytes([crc8(header)]) + inner + bytes(65 + 2 - len(inner))
    after = encode_frame(Kind.HELLO, 6)
    frames, _ = _receive([oversized, after])
    assert frames == [(Status.BAD_LENGTH, Kind.EXEC, 5, b""), (Status.OK, Kind.HELLO, 6, b"")]


def test_timeout_drops_a_partial_frame():
    partial = encode_frame(Kind.EXEC, 1, bytes(range(20)))[:15]
    good = encode_frame(Kind.EXEC, 2, b"\x01\x02")
    frames, busy = _receive([partial, CONFIG.rx_timeout_cycles + 2, good])
    assert busy == [1, 0, 1]   # partial frame pending, dropped, then the good frame is held
    assert frames == [(Status.OK, Kind.EXEC, 2, b"\x01\x02")]


def test_pause_shorter_than_the_timeout_keeps_the_frame():
    frame = encode_frame(Kind.EXEC, 4, bytes(range(30)))
    frames, _ = _receive([frame[:12], CONFIG.rx_timeout_cycles - 3, frame[12:]])
    assert frames == [(Status.OK, Kind.EXEC, 4, bytes(range(30)))]


@pytest.mark.parametrize("pause, kept", [(-1, True), (0, False)])
def test_timeout_boundary_is_exact(pause, kept):
    # A pause of rx_timeout_cycles - 1 cycles keeps the frame; rx_timeout_cycles drops it.
    frame = encode_frame(Kind.EXEC, 4, bytes(range(30)))
    frames, _ = _receive([frame[:12], CONFIG.rx_timeout_cycles + pause, frame[12:]])
    assert frames == ([(Status.OK, Kind.EXEC, 4, bytes(range(30)))] if kept else [])


def test_timeout_forgets_a_partial_header():
    frame = encode_frame(Kind.HELLO, 8)
    # Three header bytes, a long pause, then a frame: the stale bytes must not combine with it.
    frames, _ = _receive([frame[:3], CONFIG.rx_timeout_cycles + 2, frame])
    assert frames == [(Status.OK, Kind.HELLO, 8, b"")]
