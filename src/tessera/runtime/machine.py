"""The accelerator's machine state and the execution of one ``EXEC`` program, bit for bit.

:class:`Machine` holds the buffers of ``docs/isa.md`` (``ACT``, ``WGT``, ``PARAM``, ``LUT``, the
accumulators and the post state) and runs the instruction bytes of one frame with the exact
semantics and checks of the ISA, using :mod:`tessera.numerics` for the arithmetic (one
``integer_matmul`` per ``GEMM``, ``postprocess`` on the hardware parameter encoding).

Instructions are checked in this order, and the first failing check gives the status:

1. fewer than 16 bytes left: ``TRUNCATED``;
2. opcode above 5: ``BAD_OPCODE``;
3. ``BAD_FIELD``: non-zero padding, then the fields (``LOAD``: buffer, LUT present, count;
   ``GEMM``: k, m_rows, n_cols; ``POST``: mode built, LUT present, ``zero_point``/``lo``/``hi``
   in the ``output_bits`` range; ``STORE``: count);
4. ``BAD_ADDRESS``: every buffer range (``GEMM``: ``a_addr+k``, ``w_addr+k``, ``out_addr+n_cols``,
   ``param_addr+n_cols``, whether or not it drains);
5. ``LOAD`` payload past the end of the frame: ``TRUNCATED``; ``STORE`` not last or larger than
   ``max_payload``: ``STORE_NOT_LAST``.

Operands are ``input_bits``/``weight_bits`` wide: the buffers hold them unpacked (int8 up to 8
bits, int16 for 16; entries are packed and unpacked with :func:`tessera.spec.pack_operands`'s
rule at ``LOAD``, ``STORE`` and ``READ``), accumulators wrap at ``acc_bits`` and the drain writes
``output_bits``-wide results.

The drain is computed when the ``GEMM`` is issued; :class:`HazardTracker` guarantees that this
equals what the asynchronous hardware computes, by refusing every program whose result would
depend on timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tessera import numerics
from tessera.spec.packing import operand_dtype, pack_entries, unpack_entries
from tessera.spec import PARAM_ENTRY_BYTES, isa, operand_range
from tessera.spec.isa import Buffer, Mode, Opcode
from tessera.spec.protocol import Status

from .errors import ParameterError
from .hazards import HazardTracker

__all__ = ["Machine", "ExecResult", "PostState", "PARAM_DTYPE"]

#: One PARAM entry as stored in a LOAD payload (``isa.PARAM_LAYOUT``, little-endian, packed).
PARAM_DTYPE = np.dtype([("bias", "<i4"), ("multiplier", "<u4"), ("shift", "i1")])
assert PARAM_DTYPE.itemsize == PARAM_ENTRY_BYTES

_USED_BITS = {op: sum(f.width for f in layout) for op, layout in isa.LAYOUTS.items()}
_PADS = {op: [f.name for f in layout if f.name.startswith("_")]
         for op, layout in isa.LAYOUTS.items()}


@dataclass(frozen=True)
class PostState:
    """Post-processing state set by ``POST`` (reset value: onnx, no LUT, zp 0, the full
    ``output_bits`` range; the defaults here are the int8 one)."""

    mode: Mode = Mode.ONNX
    lut: bool = False
    zero_point: int = 0
    lo: int = -128
    hi: int = 127


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one program: a status, where it failed, and the STORE region if any."""

    status: Status = Status.OK
    offset: int = 0
    opcode: int = 0
    store: tuple | None = None   # (addr, count) of the final STORE


class _Fail(Exception):
    def __init__(self, status):
        self.status = status


class Machine:
    """Buffers, accumulators and post state of one accelerator; executes programs.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig
    """

    def __init__(self, config):
        self.config = config
        self.act = np.zeros((config.act_depth, config.rows), dtype=operand_dtype(config.input_bits))
        self.wgt = np.zeros((config.weight_depth, config.cols),
                            dtype=operand_dtype(config.weight_bits))
        self.param = np.zeros(config.param_depth, dtype=PARAM_DTYPE)
        self.lut = np.zeros(256, dtype=np.int8)
        self.acc = np.zeros((config.rows, config.cols), dtype=np.int64)
        lo, hi = operand_range(config.output_bits)
        self.post = PostState(lo=lo, hi=hi)   # reset: the full output range
        self.hazards = HazardTracker()

    # -- program execution -----------------------------------------------------------------

    def execute(self, program: bytes, cycles) -> ExecResult:
        """Run the instructions of one EXEC payload; ``cycles`` is the :class:`CycleModel`."""
        program = bytes(program)
        pos, end = 0, len(program)
        self._stored = None
        self.hazards.sync()
        try:
            while pos < end:
                opcode = program[pos] & 0xF
                try:
                    pos = self._step(program, pos, opcode, cycles)
                except _Fail as fail:
                    return ExecResult(fail.status, pos, opcode)
            return ExecResult(store=self._stored)
        finally:
            cycles.wait_idle()
            self.hazards.sync()

    def _step(self, program, pos, opcode, cycles) -> int:
        end = len(program)
        if end - pos < isa.INSN_BYTES:
            cycles.fetch(end - pos)
            raise _Fail(Status.TRUNCATED)
        cycles.fetch(isa.INSN_BYTES)
        if opcode > max(Opcode):
            raise _Fail(Status.BAD_OPCODE)
        opcode = Opcode(opcode)
        word = int.from_bytes(program[pos:pos + isa.INSN_BYTES], "little")
        f = isa.LAYOUTS[opcode].unpack(word)
        if word >> _USED_BITS[opcode] or any(f[name] for name in _PADS[opcode]):
            raise _Fail(Status.BAD_FIELD)
        nxt = pos + isa.INSN_BYTES
        if opcode == Opcode.LOAD:
            return self._load(program, pos, nxt, f, cycles)
        if opcode == Opcode.GEMM:
            self._gemm(pos, f, cycles)
        elif opcode == Opcode.POST:
            self._post(f)
        elif opcode == Opcode.STORE:
            self._store(f, last=nxt == end)
            self._stored = (f["addr"], f["count"])
            cycles.wait_idle()
            self.hazards.sync()
        elif opcode == Opcode.SYNC:
            cycles.wait_idle()
            self.hazards.sync()
        return nxt

    def _check_range(self, start, count, depth):
        if start + count > depth:
            raise _Fail(Status.BAD_ADDRESS)

    def _load(self, program, pos, nxt, f, cycles) -> int:
        cfg = self.config
        if f["buffer"] > max(Buffer) or (f["buffer"] == Buffer.LUT and not cfg.lut) or \
                f["count"] == 0:
            raise _Fail(Status.BAD_FIELD)
        buffer, addr, count = Buffer(f["buffer"]), f["addr"], f["count"]
        self._check_range(addr, count, cfg.depth(buffer))
        size = count * cfg.entry_bytes(buffer)
        if nxt + size > len(program):
            raise _Fail(Status.TRUNCATED)
        self.hazards.check_write(buffer, addr, count, pos)
        cycles.fetch(size)
        data = program[nxt:nxt + size]
        if buffer == Buffer.ACT:
            self.act[addr:addr + count] = unpack_entries(data, count, cfg.rows, cfg.input_bits)
        elif buffer == Buffer.WGT:
            self.wgt[addr:addr + count] = unpack_entries(data, count, cfg.cols, cfg.weight_bits)
        elif buffer == Buffer.PARAM:
            self.param[addr:addr + count] = np.frombuffer(data, PARAM_DTYPE)
        else:
            self.lut[addr:addr + count] = np.frombuffer(data, np.int8)
        return nxt + size

    def _gemm(self, pos, f, cycles):
        cfg = self.config
        k, m_rows, n_cols = f["k"], f["m_rows"], f["n_cols"]
        if k == 0 or not 1 <= m_rows <= cfg.rows or not 1 <= n_cols <= cfg.cols:
            raise _Fail(Status.BAD_FIELD)
        self._check_range(f["a_addr"], k, cfg.act_depth)
        self._check_range(f["w_addr"], k, cfg.weight_depth)
        self._check_range(f["out_addr"], n_cols, cfg.act_depth)
        self._check_range(f["param_addr"], n_cols, cfg.param_depth)
        drain = bool(f["drain"])
        self.hazards.issue_gemm(pos, a_addr=f["a_addr"], w_addr=f["w_addr"], k=k,
                                out_addr=f["out_addr"], param_addr=f["param_addr"],
                                n_cols=n_cols, drain=drain, lut=self.post.lut)
        cycles.gemm(k=k, m_rows=m_rows, n_cols=n_cols, drain=drain)
        a = self.act[f["a_addr"]:f["a_addr"] + k]
        w = self.wgt[f["w_addr"]:f["w_addr"] + k]
        product = numerics.integer_matmul(np.ascontiguousarray(a.T), w)
        self.acc = numerics.wrap_signed(product if f["clear"] else self.acc + product,
                                        cfg.acc_bits)
        if drain:
            self._drain(pos, f["out_addr"], f["param_addr"], m_rows, n_cols)

    def _drain(self, pos, out_addr, param_addr, m_rows, n_cols):
        post = self.post
        params = self.param[param_addr:param_addr + n_cols]
        acc = numerics.wrap_signed(
            self.acc[:m_rows, :n_cols] + params["bias"].astype(np.int64), self.config.acc_bits)
        mode = post.mode.label
        if not self.config.supports(mode):
            raise ParameterError(
                f"GEMM at byte {pos} drains in mode {mode!r}, which this configuration does not "
                f"build (requant_modes={self.config.requant_modes}): issue a POST selecting "
                f"one of them first; the hardware's result is undefined")
        if post.lo > post.hi:
            raise ParameterError(f"GEMM at byte {pos} drains with lo={post.lo} > hi={post.hi} "
                                 f"(set by POST): the hardware's clamp is undefined then")
        try:
            y = numerics.postprocess(acc, params["multiplier"], params["shift"], mode=mode,
                                     zero_point=post.zero_point, lo=post.lo, hi=post.hi,
                                     lut=self.lut if post.lut else None,
                                     bits=self.config.output_bits,
                                     acc_bits=self.config.acc_bits)
        except ValueError as e:
            raise ParameterError(
                f"GEMM at byte {pos} drains with PARAM[{param_addr}:{param_addr + n_cols}] "
                f"that is not a valid {mode!r} encoding ({e}); the hardware's result is "
                f"undefined: load parameters built by numerics.requant_multipliers") from None
        self.act[out_addr:out_addr + n_cols] = 0
        self.act[out_addr:out_addr + n_cols, :m_rows] = y.T

    def _post(self, f):
        mode = Mode(f["mode"])
        if not self.config.supports(mode.label) or (f["lut"] and not self.config.lut):
            raise _Fail(Status.BAD_FIELD)
        lo, hi = operand_range(self.config.output_bits)
        if any(not lo <= f[name] <= hi for name in ("zero_point", "lo", "hi")):
            raise _Fail(Status.BAD_FIELD)
        self.post = PostState(mode, bool(f["lut"]), f["zero_point"], f["lo"], f["hi"])

    def _store(self, f, *, last):
        if f["count"] == 0:
            raise _Fail(Status.BAD_FIELD)
        self._check_range(f["addr"], f["count"], self.config.act_depth)
        if not last or f["count"] * self.config.act_entry_bytes > self.config.max_payload:
            raise _Fail(Status.STORE_NOT_LAST)

    # -- host access -------------------------------------------------------------------------

    def read_act(self, addr: int, count: int) -> bytes:
        """Return activation entries ``addr .. addr+count-1`` as the device sends them."""
        return pack_entries(self.act[addr:addr + count], self.config.input_bits)
