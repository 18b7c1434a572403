"""Instruction decode and validation: the executor's error table, pipelined over the fetch.

``docs/isa.md`` fixes which status an instruction earns and in which order the checks apply
(the emulator, :mod:`tessera.runtime.machine`, implements the same order):

1. opcode above 5 (above 8 for a ``cnn`` configuration) -> ``BAD_OPCODE``;
2. non-zero padding (a ``_pad*`` field or any bit after the last field) -> ``BAD_FIELD``;
3. the field checks (``LOAD``: buffer, LUT present, count; ``GEMM``: k, m_rows, n_cols;
   ``POST``: mode built, LUT present, ``zero_point``/``lo``/``hi`` in the ``output_bits``
   range; ``STORE``: count; ``WINDOW``: ``pad_value`` in the ``input_bits`` range; ``ADD``:
   count, mode tflite built and selected by the post state; ``CONV``: the window,
   :mod:`tessera.hw.conv_checks`) -> ``BAD_FIELD``;
4. buffer ranges (a ``GEMM`` checks all four, drain or not; ``ADD`` its three ACT ranges and
   three PARAM entries; ``CONV``: :mod:`tessera.hw.conv_checks`) -> ``BAD_ADDRESS``;
5. a ``LOAD`` payload past the end of the frame -> ``TRUNCATED``; a ``STORE`` that is not last or
   asks for more than ``max_payload`` bytes -> ``STORE_NOT_LAST``.

(An instruction with fewer than 16 bytes left in the frame is caught by the sequencer before it
is decoded.) Every layout comes from :data:`tessera.hw.layouts.INSN_LAYOUTS` and
``CNN_INSN_LAYOUTS``.

Timing: the program sequencer (``hw/sequencer.py``) reads an instruction one byte per cycle.
Every named field of every instruction but ``WINDOW`` lies in its first :data:`HEAD_BYTES` bytes
(checked at import), so the decode runs as a three-step pipeline in the cycles that present the
last :data:`DECODE_STEPS` bytes, which can only be padding (``WINDOW`` has fields in byte 13
and the low :data:`WINDOW_BITS_IN_BYTE_14` bits of byte 14: they are latched from ``tail`` for
the sequencer and for the check of ``pad_value`` in step 3, and only the rest of byte 14 and
byte 15 are padding for it). Step 1 registers the field checks (for a ``cnn`` configuration those
of each opcode, chosen by the opcode in step 2), the range sums
``start + count`` (an ``ADD``'s share the ``GEMM``'s registers) and the ``LOAD`` payload length
``count * entry_bytes`` (shifts and adds of elaboration-time constants, no multiplier); step 2
registers the range and length compares; step 3 registers the status by priority (the last byte,
which comes straight from the frame buffer, only as a flag that one gate folds into
``ok``/``status``). The status is therefore
ready, from registers, in the cycle after the 16th byte, exactly when the unpipelined decode was:
the executor's timing (16 cycles per instruction) is unchanged. A ``CONV``'s window checks
(``conv_status``, registered by the sequencer's :class:`~tessera.hw.conv_checks.WindowChecks`
from the latched fields in step 3) are folded into the outputs like the last byte: step 3
registers whether the ``CONV`` passed the checks before them, and one gate then lets
``conv_status`` through (its sums and compares end in WindowChecks' register, not in ``status``).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import isa
from tessera.spec.isa import Buffer, CnnOpcode, Mode, Opcode
from tessera.spec.protocol import Status

from .layouts import CNN_INSN_LAYOUTS, INSN_LAYOUTS

__all__ = ["DECODE_STEPS", "HEAD_BYTES", "WINDOW_BITS_IN_BYTE_14", "InstructionDecoder",
           "times_const"]

#: Pipeline steps of the decode (the last ``DECODE_STEPS`` bytes of an instruction are padding).
DECODE_STEPS = 3
#: Bytes of an instruction that hold named fields (the rest must be zero).
HEAD_BYTES = isa.INSN_BYTES - DECODE_STEPS


def _named_field_end(layout):
    end = 0
    for name, field in layout:
        if not name.startswith("_"):
            end = max(end, field.offset + field.shape.width)
    return end


for _op, _layout in {**INSN_LAYOUTS, **CNN_INSN_LAYOUTS}.items():
    if _op == CnnOpcode.WINDOW:
        continue
    if _named_field_end(_layout) > HEAD_BYTES * 8:
        raise ValueError(
            f"{_op.name}: a named field ends at bit {_named_field_end(_layout)}, after the first "
            f"{HEAD_BYTES} bytes; the pipelined decoder needs the last {DECODE_STEPS} bytes of "
            f"every instruction to be padding (lower DECODE_STEPS in hw/decoder.py)")

#: ``WINDOW``'s named fields end in byte ``HEAD_BYTES + 1`` (14), after this many of its bits.
WINDOW_BITS_IN_BYTE_14 = _named_field_end(CNN_INSN_LAYOUTS[CnnOpcode.WINDOW]) - (HEAD_BYTES + 1) * 8
if not 0 < WINDOW_BITS_IN_BYTE_14 <= 8:
    raise ValueError(f"WINDOW's named fields end at bit "
                     f"{_named_field_end(CNN_INSN_LAYOUTS[CnnOpcode.WINDOW])}: the decoder and "
                     f"the sequencer take them from bytes {HEAD_BYTES} and {HEAD_BYTES + 1}")


def times_const(value, factor):
    """Return ``value * factor`` for a constant ``factor`` as shifts and adds (no multiplier).

    Parameters
    ----------
    value : amaranth value
        Unsigned operand.
    factor : int
        Non-negative elaboration-time constant.
    """
    if factor < 0:
        raise ValueError(f"times_const needs a non-negative factor, not {factor}")
    terms = [value << bit for bit in range(factor.bit_length()) if factor >> bit & 1]
    if not terms:
        return Const(0, 1)
    result = terms[0]
    for term in terms[1:]:
        result = result + term
    return result


class InstructionDecoder(wiring.Component):
    """Check one 128-bit instruction against the configuration, in three pipelined steps.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    head : In(HEAD_BYTES * 8)
        The instruction's first :data:`HEAD_BYTES` bytes (first byte lowest), sampled in step 1.
    tail : In(8)
        The instruction byte read in the current step (bytes ``HEAD_BYTES`` .. 15).
    left : In(16)
        Frame bytes after the instruction (``length - offset - 16``), sampled in step 2.
    step : In(DECODE_STEPS)
        One bit per step: ``step[i]`` in the cycle byte ``HEAD_BYTES + i`` is read.
    status : Out(8)
        ``Status.OK`` or the first failing check's status (from registers, valid after step 3).
    ok : Out(1)
        ``status == Status.OK`` (from registers).
    opcode : Out(4)
    entry_bytes : Out(range(max_entry + 1))
        ``LOAD``: bytes per entry of the addressed buffer (registered in step 1).
    post_tflite : In(1)
        ``cnn`` only: the post state selects mode tflite (an ``ADD`` needs it), sampled in
        step 1.
    conv_status : In(8)
        ``cnn`` only: the window checks of the ``CONV`` being decoded (``Status.OK``,
        ``BAD_FIELD`` or ``BAD_ADDRESS``), from a register, valid from the cycle after step 3.
    conv_bad : In(1)
        ``cnn`` only: ``conv_status != Status.OK``, from a register, with ``conv_status``.
    window_bytes : Out(16)
        ``cnn`` only: bytes 13 and 14 of the instruction (``WINDOW``'s last fields), registered
        in steps 1 and 2.
    """

    def __init__(self, config):
        self._config = config
        self._max_entry = max(config.entry_bytes(b) for b in Buffer)
        super().__init__({
            "head": In(HEAD_BYTES * 8),
            "tail": In(8),
            "left": In(16),
            "step": In(DECODE_STEPS),
            "status": Out(8),
            "ok": Out(1),
            "opcode": Out(4),
            "entry_bytes": Out(range(self._max_entry + 1)),
            **({"post_tflite": In(1), "conv_status": In(8), "conv_bad": In(1),
                "window_bytes": Out(16)}
               if config.cnn else {}),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        word = Cat(self.head, Const(0, (isa.INSN_BYTES - HEAD_BYTES) * 8))
        layouts = {**INSN_LAYOUTS, **(CNN_INSN_LAYOUTS if cfg.cnn else {})}
        view = {op: layout(word) for op, layout in layouts.items()}
        load, gemm, post, store = (view[Opcode.LOAD], view[Opcode.GEMM], view[Opcode.POST],
                                   view[Opcode.STORE])
        opcode = self.head[0:4]
        step1, step2, step3 = self.step[0], self.step[1], self.step[2]

        def pad_bad(op):
            # Padding fields and the tail after the last field (``struct_layout`` names them
            # with a leading underscore) must be zero; the tail's last bytes are checked on
            # ``tail`` in each step.
            result = Const(0, 1)
            for name in layouts[op].members:
                if name.startswith("_"):
                    result = result | (view[op][name] != 0)
            return result

        # -- step 1: field checks, range sums, payload length -----------------------------------
        load_field = (load.buffer > max(Buffer)) | (load.count == 0)
        if not cfg.lut:
            load_field = load_field | (load.buffer == Buffer.LUT)
        gemm_field = ((gemm.k == 0) | (gemm.m_rows == 0) | (gemm.m_rows > cfg.rows) |
                      (gemm.n_cols == 0) | (gemm.n_cols > cfg.cols))
        post_field = Const(0, 1)
        for mode in Mode:
            if not cfg.supports(mode.label):
                post_field = post_field | (post.mode == mode)
        if not cfg.lut:
            post_field = post_field | post.lut
        # zero_point, lo and hi must lie in the output range (only a field wider than the
        # output can leave it): the field's bits from the output's sign bit up are all equal.
        # (No comparator: 3 x 9 bits of AND/OR for 8-bit outputs in s16 fields.)
        for name in ("zero_point", "lo", "hi"):
            value = post[name]
            if len(value) > cfg.output_bits:
                top = value[cfg.output_bits - 1:]
                post_field = post_field | ~(top.all() | ~top.any())
        store_field = store.count == 0
        fields = {Opcode.LOAD: load_field, Opcode.GEMM: gemm_field, Opcode.POST: post_field,
                  Opcode.STORE: store_field}
        if cfg.cnn:
            add = view[CnnOpcode.ADD]
            add_field = add.count == 0
            if cfg.supports("tflite"):
                add_field = add_field | ~self.post_tflite
            else:
                add_field = Const(1, 1)
            fields[CnnOpcode.ADD] = add_field
        max_opcode = max(CnnOpcode) if cfg.cnn else max(Opcode)

        op_r = Signal(4)
        bad_op = Signal()
        field_bad = Signal()
        tail_bad = Signal()           # a tail byte of step 1 or 2 is not zero

        def nibble_flags(name):
            # "the tail byte is not zero" as one flag per nibble: the frame buffer's late read
            # data (5.8 ns clock-to-output on the LFE5U-85F) meets one 4-input LUT before a
            # register, never the step enables, an accumulation or a wider OR
            return [Signal(name=f"{name}_{half}") for half in ("lo", "hi")]

        def nonzero(flags):
            return [flags[0].eq(self.tail[0:4] != 0), flags[1].eq(self.tail[4:8] != 0)]

        tail_nz = [nibble_flags("tail_nz1"), nibble_flags("tail_nz2")]
        buffer = Signal(4)
        entry = Signal(range(self._max_entry + 1))
        payload = Signal(16 + self._max_entry.bit_length())
        load_end, store_end = Signal(17), Signal(17)
        gemm_ends = [Signal(17, name=f"gemm_end_{i}") for i in range(4)]
        store_big = Signal()
        m.d.comb += [self.opcode.eq(op_r), self.entry_bytes.eq(entry)]

        field_now = Signal()
        entry_now = Signal.like(entry)
        payload_now = Signal.like(payload)
        if cfg.cnn:
            # nine opcodes: each one's field checks are registered in step 1 and the opcode
            # chooses among the registers in step 2 (on the ECP5 the choice after the checks
            # was ten LUT levels into one register)
            op_fields = {op: Signal(name=f"field_bad_{op.name.lower()}") for op in layouts}
            with m.If(step1):
                m.d.sync += [flag.eq(pad_bad(op) | fields.get(op, Const(0, 1)))
                             for op, flag in op_fields.items()]
            with m.If(step2):
                with m.Switch(op_r):
                    for op, flag in op_fields.items():
                        with m.Case(op):
                            m.d.sync += field_bad.eq(flag)
                    with m.Default():
                        m.d.sync += field_bad.eq(0)
        else:
            with m.Switch(opcode):
                for op in layouts:
                    with m.Case(op):
                        m.d.comb += field_now.eq(pad_bad(op) | fields.get(op, Const(0, 1)))
        with m.Switch(load.buffer):
            for buf in Buffer:
                with m.Case(buf):
                    size = cfg.entry_bytes(buf)
                    m.d.comb += [entry_now.eq(size), payload_now.eq(times_const(load.count, size))]
        # The GEMM's four range ends; ADD's four share their registers (each pair has its
        # first operand in the same bits, the second is chosen by the opcode)
        gemm_terms = [(gemm.a_addr, gemm.k), (gemm.w_addr, gemm.k),
                      (gemm.out_addr, gemm.n_cols), (gemm.param_addr, gemm.n_cols)]
        if cfg.cnn:
            is_add_now = opcode == CnnOpcode.ADD
            gemm_layout, add_layout = INSN_LAYOUTS[Opcode.GEMM], CNN_INSN_LAYOUTS[CnnOpcode.ADD]
            for index, (first, add_first, add_second) in enumerate((
                    ("a_addr", "a_addr", add.count), ("w_addr", "b_addr", add.count),
                    ("out_addr", "count", add.dst), ("param_addr", "param_addr", 3))):
                assert (gemm_layout[first].offset, gemm_layout[first].shape) == \
                    (add_layout[add_first].offset, add_layout[add_first].shape), first
                gemm_terms[index] = (gemm_terms[index][0],
                                     Mux(is_add_now, add_second, gemm_terms[index][1]))
        with m.If(step1):
            m.d.sync += [
                op_r.eq(opcode),
                bad_op.eq(opcode > max_opcode),
                *([] if cfg.cnn else [field_bad.eq(field_now)]),
                *nonzero(tail_nz[0]),
                buffer.eq(load.buffer), entry.eq(entry_now), payload.eq(payload_now),
                load_end.eq(load.addr + load.count),
                store_end.eq(store.addr + store.count),
                *(end.eq(first + second) for end, (first, second) in zip(gemm_ends, gemm_terms)),
                # count * act_entry_bytes > max_payload, without the product
                store_big.eq(store.count > cfg.max_payload // cfg.act_entry_bytes),
            ]

        # The version 3 state of the pipeline: WINDOW's tail rule, CONV.
        is_window, is_conv = Signal(), Signal()
        win_nz2 = Signal()            # byte 14 has a bit set above WINDOW's last field
        # WINDOW's pad_value: its bits in the head (registered in step 1) and in bytes 13 and 14
        # (registered as they are read); it must lie in the input range, checked in step 3 from
        # registers only
        window = CNN_INSN_LAYOUTS[CnnOpcode.WINDOW]
        pad_offset = window["pad_value"].offset
        pad_head = Signal(max(0, HEAD_BYTES * 8 - pad_offset))
        byte13, byte14 = Signal(8), Signal(8)
        pad_value = Cat(pad_head, byte13, byte14)[:window["pad_value"].shape.width]
        pad_top = pad_value[cfg.input_bits - 1:]
        if cfg.cnn:
            m.d.comb += self.window_bytes.eq(Cat(byte13, byte14))
            with m.If(step1):
                m.d.sync += [pad_head.eq(self.head[pad_offset:]), byte13.eq(self.tail)]
            with m.If(step2):
                m.d.sync += byte14.eq(self.tail)
            with m.If(step1):
                m.d.sync += [is_window.eq(opcode == CnnOpcode.WINDOW),
                             is_conv.eq(opcode == CnnOpcode.CONV)]

        # -- step 2: range and length compares ----------------------------------------------------
        addr_bad = Signal()
        late = Signal()
        load_depth_bad = Signal()
        with m.Switch(buffer):
            for buf in Buffer:
                with m.Case(buf):
                    m.d.comb += load_depth_bad.eq(load_end > cfg.depth(buf))
        gemm_depths = (cfg.act_depth, cfg.weight_depth, cfg.act_depth, cfg.param_depth)
        gemm_addr_bad = Const(0, 1)
        for end, depth in zip(gemm_ends, gemm_depths):
            gemm_addr_bad = gemm_addr_bad | (end > depth)
        # (ADD: a, b and dst in ACT, three PARAM entries)
        add_addr_bad = ((gemm_ends[0] > cfg.act_depth) | (gemm_ends[1] > cfg.act_depth) |
                        (gemm_ends[2] > cfg.act_depth) | (gemm_ends[3] > cfg.param_depth))
        with m.If(step2):
            m.d.sync += nonzero(tail_nz[1])
            if cfg.cnn:
                m.d.sync += win_nz2.eq(self.tail[WINDOW_BITS_IN_BYTE_14:] != 0)
            with m.Switch(op_r):
                with m.Case(Opcode.LOAD):
                    m.d.sync += [addr_bad.eq(load_depth_bad), late.eq(payload > self.left)]
                with m.Case(Opcode.GEMM):
                    m.d.sync += [addr_bad.eq(gemm_addr_bad), late.eq(0)]
                with m.Case(Opcode.STORE):
                    m.d.sync += [addr_bad.eq(store_end > cfg.act_depth),
                                 late.eq((self.left != 0) | store_big)]
                if cfg.cnn:
                    with m.Case(CnnOpcode.ADD):
                        m.d.sync += [addr_bad.eq(add_addr_bad), late.eq(0)]
                with m.Default():
                    m.d.sync += [addr_bad.eq(0), late.eq(0)]

        # -- step 3: the status, by priority ------------------------------------------------------
        # The last byte arrives from the frame buffer's read port in this step: it is only
        # registered (as a flag) and folded into the outputs with one gate.
        late_status = Mux(op_r == Opcode.LOAD, Status.TRUNCATED, Status.STORE_NOT_LAST)
        tail_any = Cat(*tail_nz[0], *tail_nz[1]).any()
        # (WINDOW: byte 13 and the low bits of byte 14 are fields; pad_value in the input range)
        m.d.comb += tail_bad.eq(
            Mux(is_window, win_nz2 | ~(pad_top.all() | ~pad_top.any()), tail_any) if cfg.cnn
            else tail_any)
        checks = [(bad_op, Status.BAD_OPCODE), (field_bad | tail_bad, Status.BAD_FIELD),
                  (addr_bad, Status.BAD_ADDRESS), (late, late_status)]
        good = ~bad_op & ~field_bad & ~tail_bad
        # CONV: the window checks come next in priority (a CONV has no other range or length
        # check); they arrive registered a cycle after this step, so step 3 registers only
        # that they decide, and the outputs let them through with one gate
        conv_failed = Signal()
        if cfg.cnn:
            conv_live = Signal()
            with m.If(step3):
                m.d.sync += conv_live.eq(is_conv & good)
            m.d.comb += conv_failed.eq(conv_live & self.conv_bad)
        status = Signal(8)
        last_nz = nibble_flags("last_nz")
        last_bad = Signal()
        m.d.comb += last_bad.eq(last_nz[0] | last_nz[1])
        with m.If(step3):
            m.d.sync += nonzero(last_nz)
            for index, (failed, value) in enumerate(checks):
                with (m.Elif if index else m.If)(failed):
                    m.d.sync += status.eq(value)
            with m.Else():
                m.d.sync += status.eq(Status.OK)
        with m.If(last_bad & (status != Status.BAD_OPCODE)):
            m.d.comb += self.status.eq(Status.BAD_FIELD)
        if cfg.cnn:
            with m.Elif(conv_failed):
                m.d.comb += self.status.eq(self.conv_status)
        with m.Else():
            m.d.comb += self.status.eq(status)
        ok = Signal()
        with m.If(step3):
            m.d.sync += ok.eq(good & ~addr_bad & ~late)
        m.d.comb += self.ok.eq(ok & ~last_bad & ~conv_failed if cfg.cnn else ok & ~last_bad)
        return m
