"""cocotb system tests: the host link under corruption, and EXEC deduplication by ``seq``.

Corrupted traffic (a bad payload CRC, a bad header CRC, an oversized length, random garbage,
a frame that stops half way) goes to the RTL and to the emulator alike; the RTL's answers must
equal the emulator's byte for byte, and a good request afterwards must be answered normally.
The truncated frame waits for the receive timeout, so its test wants a configuration with a
small ``rx_timeout_cycles`` (it is skipped otherwise). Deduplication: a repeated ``EXEC`` with
the ``seq`` of the last one is answered again without running again (the counters show it), and
``HELLO`` forgets that ``seq``.
"""

import cocotb
import numpy as np

from tessera.spec import isa
from tessera.spec.isa import Buffer, Opcode
from tessera.spec.protocol import (HEADER_BYTES, READ_LAYOUT, SYNC, Kind, Status, crc8,
                                   decode_id, encode_frame, encode_id)

from tb import TB, config_from_env

_CONFIG = config_from_env()
#: Receive timeouts longer than this are not waited for in a short test.
_MAX_TIMEOUT_WAIT = 20_000


def _load_store_program(rng, addr=0, count=2):
    """LOAD random activations and STORE them back: the response shows what was written."""
    data = rng.integers(-128, 128, count * _CONFIG.act_entry_bytes, dtype=np.int8).tobytes()
    return (isa.Load(Buffer.ACT, addr, count, data).encode() +
            isa.Store(addr, count).encode()), data


async def _check_alive(tb, rng):
    """A good EXEC after the disturbance is answered with exactly the stored data."""
    program, data = _load_store_program(rng, addr=5, count=3)
    response = await tb.exec(program, what="good EXEC after the disturbance")
    assert response.kind == Status.OK and response.payload == data


def _corrupt(frame, index, rng):
    out = bytearray(frame)
    out[index] ^= int(rng.integers(1, 256))
    return bytes(out)


@cocotb.test()
async def hello_and_read(dut):
    """HELLO returns the ID record of the configuration; READ returns the buffer."""
    tb = TB(dut)
    await tb.start()
    response = await tb.request(Kind.HELLO)
    assert response.payload == encode_id(_CONFIG)
    assert decode_id(response.payload)["config_hash"] == _CONFIG.hash
    rng = np.random.default_rng(1)
    program, data = _load_store_program(rng, addr=7, count=2)
    await tb.exec(program)
    response = await tb.request(Kind.READ, READ_LAYOUT.to_bytes(addr=7, count=2))
    assert response.payload == data
    for addr, count, status in ((0, 0, Status.BAD_FIELD),
                                (_CONFIG.act_depth - 1, 2, Status.BAD_ADDRESS)):
        response = await tb.request(Kind.READ, READ_LAYOUT.to_bytes(addr=addr, count=count))
        assert response.kind == status
    response = await tb.request(Kind.HELLO, b"x")
    assert response.kind == Status.BAD_LENGTH
    response = await tb.request(0x7E)
    assert response.kind == Status.BAD_KIND


@cocotb.test()
@cocotb.parametrize(damage=["payload_crc", "payload_byte", "header_crc", "sync", "length_field"])
async def corrupted_frame(dut, damage):
    """One damaged request, then a good one; both answered exactly as the model answers."""
    tb = TB(dut)
    await tb.start()
    rng = np.random.default_rng(abs(hash(damage)) % 2**32)
    program, _ = _load_store_program(rng)
    frame = encode_frame(Kind.EXEC, tb.next_seq(), program)
    where = {"payload_crc": len(frame) - 1, "payload_byte": HEADER_BYTES + 3,
             "header_crc": 5, "sync": 0, "length_field": 3}[damage]
    got = await tb.transact(_corrupt(frame, where, rng), what=f"{damage} damaged")
    if damage.startswith("payload"):
        assert [g.kind for g in got] == [Status.BAD_CRC]
    await _check_alive(tb, rng)


@cocotb.test()
@cocotb.parametrize(excess=[1, 37])
async def oversized_length(dut, excess):
    """A header announcing more than max_payload: its bytes are skipped, then BAD_LENGTH."""
    tb = TB(dut)
    await tb.start()
    rng = np.random.default_rng(excess)
    length = _CONFIG.max_payload + excess
    header = bytes([SYNC, Kind.EXEC, tb.next_seq()]) + length.to_bytes(2, "little")
    body = rng.integers(0, 256, length + 2, dtype=np.uint8).tobytes()
    got = await tb.transact(header + bytes([crc8(header)]) + body, what="oversized frame")
    assert [g.kind for g in got] == [Status.BAD_LENGTH]
    await _check_alive(tb, rng)


@cocotb.test()
@cocotb.parametrize(seed=[1, 2, 3])
async def garbage(dut, seed):
    """Random bytes (with SYNC bytes sprinkled in) before a good frame."""
    tb = TB(dut)
    await tb.start()
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, 200, dtype=np.uint8)
    noise[rng.integers(0, 200, 20)] = SYNC
    program, data = _load_store_program(rng)
    frame = encode_frame(Kind.EXEC, tb.next_seq(), program)
    got = await tb.transact(noise.tobytes() + frame, what="garbage then a frame")
    assert got[-1].kind == Status.OK and got[-1].payload == data
    await _check_alive(tb, rng)


@cocotb.test(skip=_CONFIG.rx_timeout_cycles > _MAX_TIMEOUT_WAIT)
async def truncated_frame_timeout(dut):
    """A frame that stops half way is dropped after rx_timeout_cycles idle cycles."""
    tb = TB(dut, gap_probability=0.0)
    await tb.start()
    rng = np.random.default_rng(5)
    program, _ = _load_store_program(rng)
    frame = encode_frame(Kind.EXEC, tb.next_seq(), program)
    partial = frame[:HEADER_BYTES + len(program) // 2]
    tb.model.feed(partial)
    tb.driver.send(partial)
    await tb.driver.wait_sent()
    start = tb.cycle
    await tb.settle(timeout_cycles=_CONFIG.rx_timeout_cycles + 1000)
    waited = tb.cycle - start
    tb.model.rx_timeout()
    assert _CONFIG.rx_timeout_cycles <= waited <= _CONFIG.rx_timeout_cycles + 40, \
        f"the partial frame was dropped after {waited} cycles, not {_CONFIG.rx_timeout_cycles}"
    await _check_alive(tb, rng)


@cocotb.test()
async def exec_dedup(dut):
    """A repeated EXEC seq is answered again without running; HELLO forgets the seq."""
    tb = TB(dut)
    await tb.start()
    c = _CONFIG
    rng = np.random.default_rng(9)
    k = 5
    act = rng.integers(-128, 128, k * c.rows, dtype=np.int8).tobytes()
    wgt = rng.integers(-128, 128, k * c.cols, dtype=np.int8).tobytes()
    setup = (isa.Load(Buffer.ACT, 0, k, act).encode() + isa.Load(Buffer.WGT, 0, k, wgt).encode())
    await tb.exec(setup)
    gemm = isa.Gemm(a_addr=0, w_addr=0, k=k, m_rows=c.rows, n_cols=c.cols, clear=True,
                    drain=False).encode() + isa.Sync().encode()
    await tb.request(Kind.CLEAR_COUNTERS)
    seq = tb.next_seq()
    first = await tb.exec(gemm, seq=seq, what="EXEC")
    again = await tb.exec(gemm, seq=seq, what="repeated EXEC")
    assert again.encode() == first.encode()
    macs = (await tb.counters())["macs"]
    assert macs == k * c.rows * c.cols, f"the repeated EXEC ran again: {macs} MACs"
    await tb.request(Kind.HELLO)
    await tb.exec(gemm, seq=seq, what="same seq after HELLO")
    assert (await tb.counters())["macs"] == 2 * macs, "after HELLO the EXEC must run"
    # A repeated EXEC whose STORE region changed since re-reads the region.
    program, data = _load_store_program(rng, addr=1, count=2)
    seq = tb.next_seq()
    await tb.exec(program, seq=seq)
    await tb.exec(isa.Load(Buffer.ACT, 1, 1, bytes(c.rows)).encode(), what="overwrite")
    response = await tb.exec(program, seq=tb.next_seq(), what="new seq runs")
    assert response.payload == data
    dedup = await tb.exec(isa.Load(Buffer.ACT, 1, 1, bytes(c.rows)).encode() +
                          isa.Store(1, 2).encode(), seq=tb._seq, what="stale seq re-read")
    assert dedup.payload == data, "a repeated EXEC must not run (its LOAD would zero entry 1)"


@cocotb.test()
async def back_to_back(dut):
    """Several requests sent without waiting are answered in order (the receiver holds).

    The protocol is stop-and-wait, so a pipelined ``COUNTERS`` request may be read while the
    previous response is still leaving (its ``tx_bytes`` then depends on timing); the counters
    are read once everything has been answered.
    """
    tb = TB(dut, gap_probability=0.0, ready_probability=0.3)
    await tb.start()
    rng = np.random.default_rng(11)
    frames, expected = b"", []
    for addr in range(4):
        program, data = _load_store_program(rng, addr=addr * 3, count=3)
        frames += encode_frame(Kind.EXEC, tb.next_seq(), program)
        expected.append(data)
    got = await tb.transact(frames, what="pipelined requests")
    assert [(g.kind, g.payload) for g in got] == [(Status.OK, d) for d in expected]
    await tb.counters()
