"""Shared helpers for the runtime and emulator tests: raw frames and hand-written programs."""

import numpy as np

from tessera import numerics
from tessera.runtime.machine import PARAM_DTYPE
from tessera.spec import isa
from tessera.spec.isa import Buffer
from tessera.spec.protocol import ERROR_LAYOUT, FrameParser, Kind, Status, encode_frame


def exchange(emu, kind, payload=b"", seq=0):
    """Feed one request frame to ``emu`` and return the list of response frames it produced."""
    emu.feed(encode_frame(kind, seq, payload))
    parser = FrameParser()
    frames = parser.feed(emu.read(1 << 20))
    assert not parser.bad_frames and parser.skipped_bytes == 0
    return frames


def request(emu, kind, payload=b"", seq=0):
    """Return ``(status, payload)`` of the single response to one request."""
    frames = exchange(emu, kind, payload, seq)
    assert len(frames) == 1, frames
    assert frames[0].seq == seq
    return Status(frames[0].kind), frames[0].payload


def error_record(payload):
    """Decode an ErrorRecord payload into ``(offset, opcode)``."""
    rec = ERROR_LAYOUT.from_bytes(payload)
    assert rec["_pad"] == 0
    return rec["offset"], rec["opcode"]


def params_bytes(bias, multiplier, shift):
    """Return PARAM entries as LOAD payload bytes."""
    p = np.zeros(len(bias), dtype=PARAM_DTYPE)
    p["bias"], p["multiplier"], p["shift"] = bias, multiplier, shift
    return p.tobytes()


def load(buffer, addr, data, entry_bytes):
    data = bytes(np.ascontiguousarray(data).tobytes()) if isinstance(data, np.ndarray) else data
    assert len(data) % entry_bytes == 0
    return isa.Load(Buffer(buffer), addr, len(data) // entry_bytes, data).encode()


def layer_reference(a, w, bias, multiplier, shift, *, mode="onnx", zero_point=0, lo=-128,
                    hi=127, lut=None, acc=None):
    """Reference drain of ``a`` [k, rows] x ``w`` [k, cols]: int8 [rows, cols] (plus acc)."""
    product = numerics.integer_matmul(np.ascontiguousarray(a.T), w)
    total = product if acc is None else acc + product
    total = numerics.wrap_int32(total)
    y = numerics.postprocess(numerics.wrap_int32(total + np.asarray(bias, np.int64)),
                             multiplier, shift, mode=mode, zero_point=zero_point, lo=lo, hi=hi,
                             lut=lut)
    return y, total


def exec_ok(emu, program, seq=0):
    """Run an EXEC on ``emu`` and return its payload, asserting OK."""
    status, payload = request(emu, Kind.EXEC, program, seq)
    assert status == Status.OK, (status, payload)
    return payload
