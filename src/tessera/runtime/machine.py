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
   in the ``output_bits`` range; ``STORE``: count; ``WINDOW``: ``pad_value`` in the
   ``input_bits`` range; ``CONV`` and ``ADD``: docs/isa.md);
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

import sys
from dataclasses import dataclass

import numpy as np

from tessera import numerics
from tessera.spec.packing import operand_dtype, pack_entries, unpack_entries
from tessera.spec import PARAM_ENTRY_BYTES, isa, operand_range
from tessera.spec.isa import Buffer, CnnOpcode, ConvKind, Mode, Opcode
from tessera.spec.protocol import Status
from tessera.spec.timing import (ADD_OVERHEAD_CYCLES, ADD_PASSES, DRAIN_OVERHEAD_CYCLES,
                                 POOL_DIVIDE_CYCLES)

from . import conv
from .errors import HazardError, ParameterError
from .hazards import HazardTracker

__all__ = ["Machine", "ExecResult", "PostState", "PARAM_DTYPE"]

#: One PARAM entry as stored in a LOAD payload (``isa.PARAM_LAYOUT``, little-endian, packed).
PARAM_DTYPE = np.dtype([("bias", "<i4"), ("multiplier", "<u4"), ("shift", "i1")])
assert PARAM_DTYPE.itemsize == PARAM_ENTRY_BYTES

_USED_BITS = {op: sum(f.width for f in layout) for op, layout in isa.ALL_LAYOUTS.items()}
_PADS = {op: [f.name for f in layout if f.name.startswith("_")]
         for op, layout in isa.ALL_LAYOUTS.items()}


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
        self.window = conv.Window()           # reset: all zero (ISA version 3)
        self.hazards = HazardTracker(single_port=config.cnn)
        #: When a list, each CONV/ADD/GEMM appends ``(offset, opcode, start, end, macs)``: the
        #: executor cycles at its fetch and after it was issued (``tessera profile``).
        self.trace = None

    # -- program execution -----------------------------------------------------------------

    def execute(self, program: bytes, cycles) -> ExecResult:
        """Run the instructions of one EXEC payload; ``cycles`` is the :class:`CycleModel`."""
        program = bytes(program)
        pos, end = 0, len(program)
        self._stored = None
        self.hazards.sync()
        ok = [True]
        try:
            while pos < end:
                opcode = program[pos] & 0xF
                try:
                    pos = self._step(program, pos, opcode, cycles)
                except _Fail as fail:
                    ok[0] = False
                    return ExecResult(fail.status, pos, opcode)
            return ExecResult(store=self._stored)
        finally:
            # The end of every program waits for the Core (a STORE ends it; it does not wait
            # by itself), then answers: timing.EXEC_END_CYCLES or EXEC_ERROR_END_CYCLES.
            cycles.end_program(ok=sys.exc_info()[0] is None and ok[0])
            self.hazards.sync()

    def _step(self, program, pos, opcode, cycles) -> int:
        end = len(program)
        if end - pos < isa.INSN_BYTES:
            cycles.fetch(end - pos)
            raise _Fail(Status.TRUNCATED)
        start = cycles.now
        cycles.fetch(isa.INSN_BYTES)
        if opcode in isa.LAYOUTS:
            opcode = Opcode(opcode)
        elif self.config.cnn and opcode in isa.CNN_LAYOUTS:
            opcode = CnnOpcode(opcode)
        else:
            raise _Fail(Status.BAD_OPCODE)
        word = int.from_bytes(program[pos:pos + isa.INSN_BYTES], "little")
        f = isa.ALL_LAYOUTS[opcode].unpack(word)
        if word >> _USED_BITS[opcode] or any(f[name] for name in _PADS[opcode]):
            raise _Fail(Status.BAD_FIELD)
        nxt = pos + isa.INSN_BYTES
        if opcode == Opcode.LOAD:
            return self._load(program, pos, nxt, f, cycles)
        if opcode in (Opcode.GEMM, CnnOpcode.CONV, CnnOpcode.ADD):
            macs = cycles.macs if self.trace is not None else 0
            if opcode == Opcode.GEMM:
                self._gemm(pos, f, cycles)
            elif opcode == CnnOpcode.CONV:
                self._conv(pos, f, cycles)
            else:
                self._add(pos, f, cycles)
            if self.trace is not None:
                self.trace.append((pos, opcode, start, cycles.now, cycles.macs - macs))
        elif opcode == CnnOpcode.WINDOW:
            lo, hi = operand_range(self.config.input_bits)
            if not lo <= f["pad_value"] <= hi:
                raise _Fail(Status.BAD_FIELD)     # padding reads it as an input operand
            self.window = conv.Window.from_fields(f)
        elif opcode == Opcode.POST:
            self._post(f)
        elif opcode == Opcode.STORE:
            self._store(f, last=nxt == end)
            self._stored = (f["addr"], f["count"])
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
        params = self.param[param_addr:param_addr + n_cols]
        y = self._postprocess(pos, self.acc[:m_rows, :n_cols], params, param_addr)
        self.act[out_addr:out_addr + n_cols] = 0
        self.act[out_addr:out_addr + n_cols, :m_rows] = y.T

    def _postprocess(self, pos, acc, params, param_addr):
        """Return the drain's output for accumulators ``acc [m, n]`` with PARAM entries [n]."""
        post, n_cols = self.post, len(params)
        acc = numerics.wrap_signed(acc + params["bias"].astype(np.int64), self.config.acc_bits)
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
        return y

    # -- ISA version 3 -------------------------------------------------------------------------

    def _conv(self, pos, f, cycles):
        cfg, w = self.config, self.window
        if not w.valid or (f["kind"] in (ConvKind.AVERAGE_POOL, ConvKind.MAX_POOL) and
                           w.in_c != w.out_c) or \
                (f["kind"] == ConvKind.DEPTHWISE and w.out_c % w.in_c):
            raise _Fail(Status.BAD_FIELD)
        kind = ConvKind(f["kind"])
        p_out = w.out_h * w.out_w
        src_count = conv.map_entries(w.in_h * w.in_w, w.in_c, cfg.rows)
        dst_count = conv.map_entries(p_out, w.out_c, cfg.rows)
        groups, k = conv.conv_groups(kind, w, cfg.cols)
        self._check_range(f["src"], src_count, cfg.act_depth)
        self._check_range(f["dst"], dst_count, cfg.act_depth)
        reads = [(Buffer.ACT, f["src"], src_count)]
        pool = kind in (ConvKind.AVERAGE_POOL, ConvKind.MAX_POOL)
        if not pool:
            self._check_range(f["w_addr"], groups * k, cfg.weight_depth)
            self._check_range(f["param_addr"], w.out_c, cfg.param_depth)
            reads += [(Buffer.WGT, f["w_addr"], groups * k),
                      (Buffer.PARAM, f["param_addr"], w.out_c)]
        if f["src"] < f["dst"] + dst_count and f["dst"] < f["src"] + src_count:
            raise HazardError(f"CONV at byte {pos} writes ACT[{f['dst']}:{f['dst'] + dst_count}]"
                              f" over its own input ACT[{f['src']}:{f['src'] + src_count}]: the "
                              f"result would depend on timing; place the output elsewhere")
        if self.post.lut and not pool:
            reads.append((Buffer.LUT, 0, 256))
        self.hazards.issue_unit(pos, "CONV", reads=reads, writes=[(f["dst"], dst_count)])
        plan = conv.gather_plan(w, cfg.rows, cfg.act_bank_lanes)
        per_tile = plan.step_cycles.sum(axis=1) * (w.in_c if kind == ConvKind.CONV else 1)
        per_element = {ConvKind.AVERAGE_POOL: POOL_DIVIDE_CYCLES, ConvKind.MAX_POOL: 1}
        cycles.conv(per_tile_cycles=per_tile.tolist(), pixels=p_out, rows=cfg.rows,
                    groups=groups, cols=cfg.cols if kind == ConvKind.CONV else 1,
                    out_c=w.out_c, k=k, per_element=per_element.get(kind))
        acc = conv.run_conv(kind, w, self.act, self.wgt, f["src"], f["w_addr"], cfg.rows,
                            cfg.cols)
        if pool:
            if kind == ConvKind.AVERAGE_POOL:
                taps = conv.pool_taps(w, cfg.rows)
                if not taps.all():
                    pixel = int(np.flatnonzero(taps == 0)[0])
                    raise ParameterError(
                        f"CONV at byte {pos}: average pool output pixel {pixel} has every tap in "
                        f"the padding (pad_top={w.pad_top}, pad_left={w.pad_left}, kernel "
                        f"{w.kernel_h}x{w.kernel_w}): the average of no taps is undefined")
                acc = conv.pool_average(acc, taps)
            y = np.clip(acc, self.post.lo, self.post.hi).astype(self.act.dtype)
        else:
            params = self.param[f["param_addr"]:f["param_addr"] + w.out_c]
            y = self._postprocess(pos, acc, params, f["param_addr"])
        self.act[f["dst"]:f["dst"] + dst_count] = conv.to_entries(y, cfg.rows)

    def _add(self, pos, f, cycles):
        cfg, count = self.config, f["count"]
        if count == 0 or not cfg.supports("tflite") or self.post.mode != Mode.TFLITE:
            raise _Fail(Status.BAD_FIELD)
        for name in ("a_addr", "b_addr", "dst"):
            self._check_range(f[name], count, cfg.act_depth)
        self._check_range(f["param_addr"], 3, cfg.param_depth)
        dst = f["dst"]
        for name in ("a_addr", "b_addr"):
            if f[name] != dst and f[name] < dst + count and dst < f[name] + count:
                raise HazardError(f"ADD at byte {pos} writes ACT[{dst}:{dst + count}], which "
                                  f"partly overlaps its input ACT[{f[name]}:{f[name] + count}]"
                                  f": the result would depend on timing")
        self.hazards.issue_unit(pos, "ADD", reads=[
            (Buffer.ACT, f["a_addr"], count), (Buffer.ACT, f["b_addr"], count),
            (Buffer.PARAM, f["param_addr"], 3)], writes=[(dst, count)])
        cycles.add(cfg.drain_cycles(cfg.rows, count, ADD_PASSES * cfg.requant_cycles)
                   - DRAIN_OVERHEAD_CYCLES + ADD_OVERHEAD_CYCLES)
        params = self.param[f["param_addr"]:f["param_addr"] + 3]
        a = self.act[f["a_addr"]:f["a_addr"] + count]
        b = self.act[f["b_addr"]:f["b_addr"] + count]
        self.act[dst:dst + count] = conv.run_add(a, b, params, self.post.zero_point,
                                                 self.post.lo, self.post.hi)

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
