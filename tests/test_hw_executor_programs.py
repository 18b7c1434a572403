"""hw/top.py: EXEC programs on the RTL (executor + Core) against tessera.numerics and the
emulator, bit for bit: LOAD/POST/GEMM/SYNC/STORE, accumulation, LUT, dedup and every error."""

import numpy as np
import pytest

from tessera import numerics
from tessera.spec import isa
from tessera.spec.isa import Buffer, Gemm, Load, Mode, Nop, Post, Store, Sync
from tessera.spec.protocol import Kind, Status, encode_frame

from hw_exec_helpers import CONFIG, exact_counters, parse, run_emulator, run_rtl

RNG = np.random.default_rng(2024)
CFG = CONFIG.replace(cols=3)   # rows != cols catches a transposed layout


def _params(mode, n, rng):
    multiplier, shift = numerics.requant_multipliers(
        np.float32(0.05), rng.uniform(0.002, 0.02, n).astype(np.float32), np.float32(0.3), mode)
    bias = rng.integers(-2000, 2000, n).astype(np.int32)
    entries = b"".join(isa.PARAM_LAYOUT.to_bytes(bias=int(b), multiplier=int(m), shift=int(s))
                       for b, m, s in zip(bias, multiplier, shift))
    return bias, multiplier, shift, entries


def _enc(*insns):
    return b"".join(isa.encode(i) for i in insns)


def _expected(x, w, bias, multiplier, shift, mode, zp, lo, hi, lut=None, acc0=None):
    """Return (int8 outputs [rows, n], int64 accumulators) of one drained GEMM."""
    acc = x.astype(np.int64).T @ w.astype(np.int64)            # x: [k, rows], w: [k, n]
    if acc0 is not None:
        acc = acc + acc0
    y = numerics.postprocess(numerics.wrap_int32(acc + bias), multiplier, shift, mode=mode,
                             zero_point=zp, lo=lo, hi=hi, lut=lut)
    return y, acc


def test_gemm_programs_bit_exact():
    c, rng = CFG, RNG
    k, n = 5, c.cols
    x = rng.integers(-128, 128, (k, c.rows), dtype=np.int8)     # ACT entries 0..k-1
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)          # WGT entries 0..k-1
    lut = rng.integers(-128, 128, 256, dtype=np.int8)
    setup = [
        _enc(Load(Buffer.ACT, 0, k, x.tobytes()), Load(Buffer.WGT, 0, k, w.tobytes())),
        _enc(Load(Buffer.LUT, 0, 40, lut[:40].tobytes())),
        _enc(Load(Buffer.LUT, 40, 40, lut[40:80].tobytes())),
    ]
    for start in range(80, 256, 48):
        setup.append(_enc(Load(Buffer.LUT, start, min(48, 256 - start),
                               lut[start:start + 48].tobytes())))
    requests = [encode_frame(Kind.EXEC, i, p) for i, p in enumerate(setup)]
    expected = {}
    seq = 100
    acc_before = None
    for mode, zp, lo, hi, use_lut, clear in [("onnx", 3, -128, 127, False, True),
                                              ("tflite", -7, -20, 90, False, True),
                                              ("tflite", 0, -128, 127, True, False),
                                              ("onnx", 5, 5, 127, True, True)]:
        bias, mult, shift, entries = _params(mode, n, rng)
        out = 16 + (seq % 4) * n
        params = _enc(Load(Buffer.PARAM, 2, n, entries))
        program = _enc(Post(Mode.parse(mode), use_lut, zp, lo, hi),
                       Gemm(a_addr=0, w_addr=0, k=k, out_addr=out, param_addr=2,
                            m_rows=c.rows, n_cols=n, clear=clear, drain=True),
                       Sync(), Store(out, n))
        y, acc = _expected(x, w, bias, mult, shift, mode, zp, lo, hi,
                           lut if use_lut else None, None if clear else acc_before)
        acc_before = acc
        requests += [encode_frame(Kind.EXEC, seq, params), encode_frame(Kind.EXEC, seq + 1, program)]
        expected[len(requests) - 1] = y.T.tobytes()   # entry c holds column c, byte r = row r
        seq += 2
    requests.append(encode_frame(Kind.COUNTERS, 1))
    rtl = run_rtl(requests, CFG)
    emu = run_emulator(requests, CFG)
    for i, (got, want) in enumerate(zip(rtl[:-1], emu[:-1])):
        assert parse(got).kind == Status.OK, (i, parse(got))
        assert got == want, i
    for i, data in expected.items():
        assert parse(rtl[i]).payload == data, i
    assert exact_counters(parse(rtl[-1]).payload) == exact_counters(parse(emu[-1]).payload)


def test_partial_tiles_back_to_back_gemms_and_dedup():
    c, rng = CFG, RNG
    k = 3
    x = rng.integers(-128, 128, (2 * k, c.rows), dtype=np.int8)
    w = rng.integers(-128, 128, (k, c.cols), dtype=np.int8)
    bias, mult, shift, entries = _params("tflite", c.cols, rng)
    setup = [_enc(Load(Buffer.ACT, 0, 2 * k, x.tobytes()), Load(Buffer.WGT, 4, k, w.tobytes())),
             _enc(Load(Buffer.PARAM, 0, c.cols, entries))]
    # Two GEMMs in flight without SYNC (disjoint outputs), m_rows/n_cols partial, no clear on the
    # third: it continues from the accumulators the second left (docs/isa.md).
    program = _enc(Post(Mode.TFLITE, False, 1, -128, 127),
                   Gemm(a_addr=0, w_addr=4, k=k, out_addr=20, param_addr=0, m_rows=1,
                        n_cols=c.cols, clear=True, drain=True),
                   Gemm(a_addr=k, w_addr=4, k=k, out_addr=23, param_addr=1, m_rows=c.rows,
                        n_cols=2, clear=True, drain=True),
                   Store(20, 5))
    accumulate = _enc(Gemm(a_addr=0, w_addr=4, k=k, out_addr=26, param_addr=0, m_rows=2,
                           n_cols=c.cols, clear=False, drain=True), Store(26, c.cols))
    requests = [encode_frame(Kind.EXEC, 0, setup[0]), encode_frame(Kind.EXEC, 1, setup[1]),
                encode_frame(Kind.EXEC, 2, program),
                encode_frame(Kind.EXEC, 3, accumulate),
                encode_frame(Kind.EXEC, 3, accumulate),     # lost response: not run again
                encode_frame(Kind.COUNTERS, 4),
                encode_frame(Kind.HELLO, 5),
                encode_frame(Kind.EXEC, 3, accumulate),     # after HELLO: a new request
                encode_frame(Kind.COUNTERS, 6)]
    rtl = run_rtl(requests, CFG)
    emu = run_emulator(requests, CFG)
    rtl, emu = rtl[1:], emu[1:]
    for i in (0, 1, 2, 3, 5, 6):
        assert rtl[i] == emu[i], (i, parse(rtl[i]), parse(emu[i]))
    for i in (4, 7):
        assert exact_counters(parse(rtl[i]).payload) == exact_counters(parse(emu[i]).payload)
    y0, _ = _expected(x[:k], w, bias, mult, shift, "tflite", 1, -128, 127)
    y1, acc1 = _expected(x[k:], w[:, :2], bias[1:3], mult[1:3], shift[1:3], "tflite", 1, -128,
                         127)
    got = np.frombuffer(parse(rtl[1]).payload, np.int8).reshape(5, c.rows)
    np.testing.assert_array_equal(got[:3, 0], y0[0])
    np.testing.assert_array_equal(got[:3, 1], 0)              # rows >= m_rows are written as 0
    np.testing.assert_array_equal(got[3:], y1.T)
    assert parse(rtl[3]).payload == parse(rtl[2]).payload
    assert parse(rtl[6]).payload != parse(rtl[2]).payload     # ran again: accumulated twice
    macs = [exact_counters(parse(rtl[i]).payload)["macs"] for i in (4, 7)]
    assert macs[1] - macs[0] == c.rows * c.cols * k


def _status(response):
    frame = parse(response)
    return Status(frame.kind), int.from_bytes(frame.payload[:2], "little"), frame.payload[2]


ERROR_CASES = {
    "bad_opcode": (_enc(Nop()) + bytes([0x09]) + bytes(15), (Status.BAD_OPCODE, 16, 9)),
    "nonzero_pad": (_enc(Nop())[:15] + b"\x01", (Status.BAD_FIELD, 0, 0)),
    "gemm_pad": ((isa.LAYOUTS[isa.Opcode.GEMM].pack(opcode=2, _pad0=1, k=1, m_rows=1, n_cols=1)
                  ).to_bytes(16, "little"), (Status.BAD_FIELD, 0, 2)),
    "unknown_buffer": (isa.LAYOUTS[isa.Opcode.LOAD].to_bytes(opcode=1, buffer=4, count=1),
                       (Status.BAD_FIELD, 0, 1)),
    "k_zero": (_enc(Sync(), Gemm(0, 0, 0)), (Status.BAD_FIELD, 16, 2)),
    "m_rows": (_enc(Gemm(0, 0, 1, m_rows=3)), (Status.BAD_FIELD, 0, 2)),
    "n_cols": (_enc(Gemm(0, 0, 1, n_cols=4)), (Status.BAD_FIELD, 0, 2)),
    "load_count_zero": (_enc(Load(Buffer.WGT, 0, 0)), (Status.BAD_FIELD, 0, 1)),
    "store_count_zero": (_enc(Store(0, 0)), (Status.BAD_FIELD, 0, 4)),
    "load_range": (_enc(Load(Buffer.PARAM, 7, 2, bytes(18))), (Status.BAD_ADDRESS, 0, 1)),
    "gemm_a_range": (_enc(Gemm(39, 0, 2)), (Status.BAD_ADDRESS, 0, 2)),
    "gemm_w_range": (_enc(Gemm(0, 31, 2)), (Status.BAD_ADDRESS, 0, 2)),
    "gemm_out_range": (_enc(Gemm(0, 0, 1, out_addr=39, n_cols=2, drain=False)),
                       (Status.BAD_ADDRESS, 0, 2)),
    "gemm_param_range": (_enc(Gemm(0, 0, 1, param_addr=7, n_cols=2)),
                         (Status.BAD_ADDRESS, 0, 2)),
    "store_range": (_enc(Store(31, 2)), (Status.BAD_ADDRESS, 0, 4)),
    "truncated_insn": (_enc(Nop(), Sync()) + bytes([0x35, 0x00]), (Status.TRUNCATED, 32, 5)),
    "truncated_load": (_enc(Load(Buffer.ACT, 0, 3, bytes(6)))[:16 + 5],
                       (Status.TRUNCATED, 0, 1)),
    "store_not_last": (_enc(Store(0, 1), Nop()), (Status.STORE_NOT_LAST, 0, 4)),
    "store_too_big": (_enc(Store(0, 33)), (Status.STORE_NOT_LAST, 0, 4)),   # 66 bytes
}


def test_every_error_status_and_no_write_outside_the_frame():
    c = CFG.replace(act_depth=40, max_payload=64)
    act = RNG.integers(-128, 128, (4, c.rows), dtype=np.int8).tobytes()
    requests, expect = [], []
    for i, (name, (payload, want)) in enumerate(ERROR_CASES.items()):
        if name == "store_range":
            payload = _enc(Store(39, 2))
        # A good LOAD first (executed), then the failing instruction, then one that must not run.
        prefix = _enc(Load(Buffer.ACT, 4 * i % 28, 4, act))
        tail = _enc(Load(Buffer.ACT, 36, 4, act[::-1]))[:16]
        body = prefix + payload
        if want[0] not in (Status.TRUNCATED, Status.STORE_NOT_LAST) and \
                len(body) + 16 <= c.max_payload:
            body += tail
        requests.append(encode_frame(Kind.EXEC, i, body))
        expect.append((want[0], want[1] + len(prefix), want[2]))
    read_all = [encode_frame(Kind.READ, 200, (0).to_bytes(2, "little") + (32).to_bytes(2, "little")),
                encode_frame(Kind.READ, 201, (32).to_bytes(2, "little") + (8).to_bytes(2, "little"))]
    requests += read_all
    rtl = run_rtl(requests, c)
    emu = run_emulator(requests, c)
    for name, got, want, expected in zip(ERROR_CASES, rtl, emu, expect):
        assert _status(got) == expected, (name, _status(got))
        assert got == want, name
    assert rtl[-2:] == emu[-2:]          # identical buffers: nothing written after an error
    assert parse(rtl[-1]).payload == bytes(8 * c.rows)   # entries 32..39 never written


def test_mode_and_lut_errors_on_a_minimal_configuration():
    c = CFG.replace(requant_modes=("tflite",), lut=False)
    cases = [
        (_enc(Post(Mode.ONNX)), (Status.BAD_FIELD, 0, 3)),
        (_enc(Post(Mode.TFLITE, lut=True)), (Status.BAD_FIELD, 0, 3)),
        (_enc(Load(Buffer.LUT, 0, 1, b"\x00")), (Status.BAD_FIELD, 0, 1)),
        (_enc(Post(Mode.TFLITE, False, 0, -5, 5)), (Status.OK, 0, 0)),
    ]
    requests = [encode_frame(Kind.EXEC, i, p) for i, (p, _) in enumerate(cases)]
    rtl = run_rtl(requests, c)
    assert rtl == run_emulator(requests, c)
    for (_, want), got in zip(cases[:3], rtl):
        assert _status(got) == want
    assert parse(rtl[3]).kind == Status.OK and parse(rtl[3]).payload == b""


def test_drain_bound_stalls_equal_the_cycle_model():
    # 4x4: a drain takes 16 + 8 cycles, more than 16 fetch cycles + a k=1 GEMM, so the engine
    # stalls; the stall count depends on the executor's issue timing (16 cycles per instruction,
    # one per LOAD payload byte), which must be the emulator's model exactly.
    c = CONFIG.replace(rows=4, cols=4, act_depth=32, weight_depth=16, param_depth=4,
                       max_payload=128)
    rng = np.random.default_rng(7)
    bias, mult, shift, entries = _params("tflite", 4, rng)
    x = rng.integers(-128, 128, (4, 4), dtype=np.int8)
    w = rng.integers(-128, 128, (4, 4), dtype=np.int8)
    setup = _enc(Load(Buffer.ACT, 0, 4, x.tobytes()), Load(Buffer.WGT, 0, 4, w.tobytes()),
                 Load(Buffer.PARAM, 0, 4, entries))
    gemm = [Gemm(a_addr=i, w_addr=i, k=1, out_addr=8 + 4 * i, param_addr=0, m_rows=4, n_cols=4)
            for i in range(3)]
    program = _enc(Post(Mode.TFLITE), gemm[0], gemm[1],
                   Load(Buffer.WGT, 8, 1, w[0].tobytes()), gemm[2], Store(8, 12))
    requests = [encode_frame(Kind.EXEC, 1, setup), encode_frame(Kind.CLEAR_COUNTERS, 2),
                encode_frame(Kind.EXEC, 3, program), encode_frame(Kind.COUNTERS, 4)]
    rtl = run_rtl(requests, c)
    emu = run_emulator(requests, c)
    assert rtl[:3] == emu[:3]
    assert [parse(r).kind for r in rtl[:3]] == [Status.OK] * 3
    counters = exact_counters(parse(rtl[3]).payload)
    assert counters == exact_counters(parse(emu[3]).payload)
    assert counters["stall_cycles"] > 0


def test_a_frame_is_answered_only_once_its_gemms_are_done():
    # A frame ending in GEMMs (no SYNC, no STORE) is answered only once the Core is idle: a
    # COUNTERS request sent the moment the answer is complete sees both GEMMs and the drain.
    # The last GEMM is handed over in the first one's hand-off cycle, in which the Core is idle
    # (the first does not drain), and the frame ends the cycle after: the executor, which sees
    # `idle` through a register, must not take that cycle's stale copy for the end of the work.
    c = CONFIG
    rng = np.random.default_rng(11)
    k = c.act_depth
    bias, mult, shift, entries = _params("onnx", c.cols, rng)
    x = rng.integers(-128, 128, (k, c.rows), dtype=np.int8)
    w = rng.integers(-128, 128, (k, c.cols), dtype=np.int8)
    first = Gemm(a_addr=0, w_addr=0, k=k, out_addr=0, m_rows=c.rows, n_cols=c.cols,
                 drain=False)
    last = Gemm(a_addr=0, w_addr=0, k=k, out_addr=0, param_addr=0, m_rows=c.rows,
                n_cols=c.cols, clear=False)
    requests = [encode_frame(Kind.EXEC, 1, _enc(Load(Buffer.ACT, 0, k // 2,
                                                     x[:k // 2].tobytes()))),
                encode_frame(Kind.EXEC, 2, _enc(Load(Buffer.ACT, k // 2, k // 2,
                                                     x[k // 2:].tobytes()))),
                encode_frame(Kind.EXEC, 3, _enc(Load(Buffer.WGT, 0, k // 2,
                                                     w[:k // 2].tobytes()))),
                encode_frame(Kind.EXEC, 4, _enc(Load(Buffer.WGT, k // 2, k // 2,
                                                     w[k // 2:].tobytes()))),
                encode_frame(Kind.EXEC, 5, _enc(Load(Buffer.PARAM, 0, c.cols, entries))),
                encode_frame(Kind.CLEAR_COUNTERS, 6),
                encode_frame(Kind.EXEC, 7, _enc(first, last)),
                encode_frame(Kind.COUNTERS, 8),
                encode_frame(Kind.EXEC, 9, _enc(Store(0, c.cols)))]
    rtl = run_rtl(requests, c, wait_idle=False)
    emu = run_emulator(requests, c)
    assert [parse(r).kind for r in rtl] == [Status.OK] * len(requests)
    counters = exact_counters(parse(rtl[7]).payload)
    assert counters["compute_cycles"] == 2 * (k + 4)
    assert counters == exact_counters(parse(emu[7]).payload)
    assert rtl[8] == emu[8]
