"""The whole accelerator (executor + Core) at operand widths other than 8, against the emulator.

Request bytes go into the RTL's ``i_rx`` under the Amaranth simulator and into the emulator;
every response must be byte-identical. The programs LOAD entries packed by ``pack_operands``
(odd row counts leave a padding nibble, which the LOAD sets to ones: it must not be stored),
drain GEMMs with POST states at the ends of the output range and read the results back with
STORE and READ; the outputs are also checked against ``tessera.numerics``. POST values outside
the output range are refused (``BAD_FIELD``) and the reset post state clamps to the output range.
"""

import numpy as np
import pytest
from hw_exec_helpers import exact_counters, parse, run_emulator, run_rtl

from tessera import numerics
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.config import operand_range, pack_operands, unpack_operands
from tessera.spec.isa import Buffer, Gemm, Load, Mode, Post, Store, Sync
from tessera.spec.protocol import READ_LAYOUT, Kind, Status, encode_frame


#: name -> configuration fields (built inside the tests).
CONFIGS = {
    "3x2-int4": dict(rows=3, cols=2, input_bits=4, weight_bits=4),
    "2x3-a4w8": dict(rows=2, cols=3, input_bits=4, weight_bits=8),
    "3x3-a8w4": dict(rows=3, cols=3, input_bits=8, weight_bits=4),
    "2x2-int16-acc48": dict(rows=2, cols=2, input_bits=16, weight_bits=16),
    "3x2-a16w8": dict(rows=3, cols=2, input_bits=16, weight_bits=8),
}
#: The int8 configuration (s16 POST fields, 8-bit outputs: the range check is built too).
INT8 = {"2x2-int8": dict(rows=2, cols=2)}


def _config(name):
    return AcceleratorConfig(act_depth=32, weight_depth=32, param_depth=8, max_payload=160,
                             rx_timeout_cycles=64, **{**CONFIGS, **INT8}[name])


def _entries(matrix, bits, *, pad_ones=False):
    """The LOAD payload of ``matrix``'s rows; ``pad_ones`` sets an entry's padding bits."""
    out = bytearray()
    for row in matrix:
        entry = bytearray(pack_operands(row, bits))
        used = len(row) * bits
        if pad_ones and used % 8:
            entry[-1] |= (0xFF << (used % 8)) & 0xFF
        out += entry
    return bytes(out)


def _enc(*insns):
    return b"".join(isa.encode(i) for i in insns)


def _draw(rng, shape, bits):
    lo, hi = operand_range(bits)
    values = rng.integers(lo, hi + 1, shape)
    values.flat[::3] = lo                    # the most negative operand, often
    return values.astype(np.int8 if bits <= 8 else np.int16)


def _scales(config, k, rng, mode, n):
    # Accumulators of k products mapped onto ~the output range.
    in_max = -operand_range(config.input_bits)[0]
    w_max = -operand_range(config.weight_bits)[0]
    out_max = -operand_range(config.output_bits)[0]
    y_scale = np.float32(np.sqrt(k) * in_max * w_max / 3 / out_max)
    w_scale = rng.uniform(0.5, 2.0, n).astype(np.float32)
    return numerics.requant_multipliers(np.float32(1.0), w_scale, y_scale, mode)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_programs_at_widths(name):
    config = _config(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    rows, cols = config.rows, config.cols
    k = 9
    qmin, qmax = operand_range(config.output_bits)
    x = _draw(rng, (k, rows), config.input_bits)
    w = _draw(rng, (k, cols), config.weight_bits)
    requests = [encode_frame(Kind.EXEC, 1, _enc(
        Load(Buffer.ACT, 0, k, _entries(x, config.input_bits, pad_ones=True)),
        Load(Buffer.WGT, 0, k, _entries(w, config.weight_bits, pad_ones=True))))]
    expected = {}
    seq = 10
    cases = [("onnx", 0, qmin, qmax), ("onnx", qmin // 2, qmin // 2, qmax),
             ("tflite", 1, qmin + 1, qmax - 2), ("tflite", qmax, qmin, qmax)]
    for mode, zp, lo, hi in cases:
        if not config.supports(mode):
            continue
        multiplier, shift = _scales(config, k, rng, mode, cols)
        bias = rng.integers(-3000, 3000, cols).astype(np.int32)
        entries = b"".join(isa.PARAM_LAYOUT.to_bytes(bias=int(b), multiplier=int(m), shift=int(s))
                           for b, m, s in zip(bias, multiplier, shift))
        out = 16 + (seq % 3) * cols
        program = _enc(Load(Buffer.PARAM, 1, cols, entries),
                       Post(Mode.parse(mode), False, zp, lo, hi),
                       Gemm(a_addr=0, w_addr=0, k=k, out_addr=out, param_addr=1,
                            m_rows=rows, n_cols=cols, clear=True, drain=True),
                       Sync(), Store(out, cols))
        acc = numerics.wrap_signed(x.astype(np.int64).T @ w.astype(np.int64) + bias,
                                   config.acc_bits)
        y = numerics.postprocess(acc, multiplier, shift, mode=mode, zero_point=zp, lo=lo, hi=hi,
                                 bits=config.output_bits, acc_bits=config.acc_bits)
        requests.append(encode_frame(Kind.EXEC, seq, program))
        expected[len(requests) - 1] = b"".join(pack_operands(col, config.output_bits)
                                               for col in y.T)
        seq += 1
    # READ of the whole region, the weights' padding included (must come back zero).
    requests.append(encode_frame(Kind.READ, 50, READ_LAYOUT.to_bytes(addr=0, count=k)))
    requests.append(encode_frame(Kind.COUNTERS, 51))
    rtl = run_rtl(requests, config, max_cycles=40000)
    emu = run_emulator(requests, config)
    for i, (got, want) in enumerate(zip(rtl[:-1], emu[:-1])):
        assert parse(got).kind == Status.OK, (i, parse(got))
        assert got == want, i
    for i, data in expected.items():
        assert parse(rtl[i]).payload == data, i
    read = parse(rtl[-2]).payload
    assert read == _entries(x, config.input_bits)          # padding bits read back as zero
    assert exact_counters(parse(rtl[-1]).payload) == exact_counters(parse(emu[-1]).payload)
    values = np.concatenate([unpack_operands(parse(rtl[i]).payload, rows * cols,
                                             config.output_bits) for i in expected])
    assert values.min() == qmin and values.max() == qmax   # both clamp ends reached


@pytest.mark.parametrize("name", ["3x2-int4", "2x3-a4w8", "2x2-int8"])
def test_post_range_and_reset_state(name):
    # POST zero_point/lo/hi must lie in the output range ([-8, 7] with 4-bit outputs, [-128,
    # 127] with 8-bit ones in the s16 fields): BAD_FIELD otherwise, at the POST's offset. A
    # GEMM drained from the reset post state clamps to the output range.
    config = _config(name)
    qmin, qmax = operand_range(config.output_bits)
    rng = np.random.default_rng(7)
    rows, cols = config.rows, config.cols
    x = _draw(rng, (4, rows), config.input_bits)
    w = _draw(rng, (4, cols), config.weight_bits)
    multiplier, shift = _scales(config, 4, rng, "onnx", cols)
    multiplier = (multiplier.view(np.float32) * 8).view(np.uint32)   # saturate often
    entries = b"".join(isa.PARAM_LAYOUT.to_bytes(bias=0, multiplier=int(m), shift=0)
                       for m in multiplier)
    requests = [encode_frame(Kind.EXEC, 1, _enc(
        Load(Buffer.ACT, 0, 4, _entries(x, config.input_bits)),
        Load(Buffer.WGT, 0, 4, _entries(w, config.weight_bits)),
        Load(Buffer.PARAM, 0, cols, entries),
        Gemm(a_addr=0, w_addr=0, k=4, out_addr=8, param_addr=0, m_rows=rows, n_cols=cols,
             clear=True, drain=True),
        Store(8, cols)))]
    bad = [(qmax + 1, qmin, qmax), (0, qmin - 1, qmax), (0, qmin, qmax + 1),
           (-32768, qmin, qmax), (0, 0, 32767), (qmin - 1, qmin, qmax), (0, qmin, -1 << 9)]
    for i, (zp, lo, hi) in enumerate(bad):
        requests.append(encode_frame(Kind.EXEC, 2 + i, _enc(Sync(), Post(Mode.ONNX, False, zp,
                                                                          lo, hi))))
    requests.append(encode_frame(Kind.EXEC, 20, _enc(Post(Mode.ONNX, False, qmin, qmin, qmax))))
    rtl = run_rtl(requests, config)
    emu = run_emulator(requests, config)
    assert rtl == emu
    first = parse(rtl[0])
    assert first.kind == Status.OK
    values = unpack_operands(first.payload, rows * cols, config.output_bits)
    assert min(values) == qmin and max(values) == qmax
    for response in rtl[1:1 + len(bad)]:
        frame = parse(response)
        assert frame.kind == Status.BAD_FIELD
        assert frame.payload[:2] == (16).to_bytes(2, "little")     # the POST after the SYNC
    assert parse(rtl[-1]).kind == Status.OK
