"""The Tessera instruction set: opcodes, field layouts, encoding and decoding.

Every instruction is 16 bytes (128 bits, little-endian), the opcode in bits 0..3. ``LOAD`` is
followed in the program byte stream by its payload (``count`` entries of the target buffer).
See ``docs/isa.md`` for the semantics; this module is the single declaration of the bit layouts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .layout import BitLayout, Field

__all__ = [
    "INSN_BYTES", "ISA_VERSION", "CNN_ISA_VERSION", "Opcode", "CnnOpcode", "Buffer", "Mode",
    "ConvKind", "LAYOUTS", "CNN_LAYOUTS", "ALL_LAYOUTS", "PARAM_LAYOUT",
    "Instruction", "Load", "Gemm", "Post", "Store", "Sync", "Nop", "Window", "Conv", "Add",
    "encode", "decode", "decode_program", "ProgramError",
]

#: Bumped whenever an encoding or a semantic of the ISA or protocol changes.
#: 2: ``POST`` ``zero_point``/``lo``/``hi`` widened from s8 to s16 (16-bit outputs), operand
#: entries packed at the configured widths, ``POST`` values outside the output range refused.
ISA_VERSION = 2

#: The version of configurations with the CNN features (``AcceleratorConfig.cnn``): version 2
#: plus ``WINDOW``, ``CONV`` and ``ADD`` (docs/isa.md). A configuration reports its own version
#: (``config.isa_version``), so version-2 devices and programs are unchanged.
CNN_ISA_VERSION = 3

INSN_BYTES = 16
_INSN_BITS = INSN_BYTES * 8


class Opcode(enum.IntEnum):
    NOP = 0
    LOAD = 1
    GEMM = 2
    POST = 3
    STORE = 4
    SYNC = 5


class CnnOpcode(enum.IntEnum):
    """Opcodes added by ISA version 3 (configurations with ``cnn``; docs/isa.md).

    Kept apart from :class:`Opcode`, which the version-2 gateware enumerates: there, every one
    of these is ``BAD_OPCODE``.
    """

    WINDOW = 6
    CONV = 7
    ADD = 8


class ConvKind(enum.IntEnum):
    """What a ``CONV`` computes over its window (docs/isa.md, version 3)."""

    CONV = 0
    DEPTHWISE = 1
    AVERAGE_POOL = 2
    MAX_POOL = 3


class Buffer(enum.IntEnum):
    ACT = 0    # activations / layer outputs: entry = rows x input_bits (config.pack_operands)
    WGT = 1    # weights: entry = cols x weight_bits (config.pack_operands)
    PARAM = 2  # per-channel bias (s32), multiplier (u32), shift (s8)
    LUT = 3    # activation lookup table: entry = one int8, index = input + 128


class Mode(enum.IntEnum):
    ONNX = 0
    TFLITE = 1

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, mode) -> "Mode":
        if isinstance(mode, cls):
            return mode
        try:
            return cls[str(mode).upper()]
        except KeyError:
            raise ValueError(f"Requant mode must be 'onnx' or 'tflite', not {mode!r}") from None


def _insn(name, *fields):
    return BitLayout(name, (Field("opcode", 4),) + fields, width=_INSN_BITS)


LAYOUTS = {
    Opcode.NOP: _insn("Nop"),
    Opcode.LOAD: _insn("Load", Field("buffer", 4), Field("addr", 16), Field("count", 16)),
    Opcode.GEMM: _insn(
        "Gemm",
        Field("clear", 1), Field("drain", 1), Field("_pad0", 2),
        Field("a_addr", 16), Field("w_addr", 16), Field("k", 16),
        Field("out_addr", 16), Field("param_addr", 16),
        Field("m_rows", 8), Field("n_cols", 8),
    ),
    Opcode.POST: _insn(
        "Post",
        Field("mode", 1), Field("lut", 1), Field("_pad0", 2),
        # s16: wide enough for 16-bit outputs; each must lie in the output_bits range.
        Field("zero_point", 16, signed=True), Field("lo", 16, signed=True),
        Field("hi", 16, signed=True),
    ),
    Opcode.STORE: _insn("Store", Field("_pad0", 4), Field("addr", 16), Field("count", 16)),
    Opcode.SYNC: _insn("Sync"),
}

#: Layouts of the version-3 instructions (``config.cnn``).
CNN_LAYOUTS = {
    CnnOpcode.WINDOW: _insn(
        "Window",
        Field("in_h", 10), Field("in_w", 10), Field("in_c", 12),
        Field("out_h", 10), Field("out_w", 10), Field("out_c", 12),
        Field("kernel_h", 5), Field("kernel_w", 5), Field("stride_h", 3), Field("stride_w", 3),
        Field("dilation_h", 3), Field("dilation_w", 3), Field("pad_top", 4), Field("pad_left", 4),
        Field("pad_value", 16, signed=True),
    ),
    CnnOpcode.CONV: _insn(
        "Conv",
        Field("kind", 2), Field("_pad0", 2),
        Field("src", 16), Field("dst", 16), Field("w_addr", 16), Field("param_addr", 16),
    ),
    CnnOpcode.ADD: _insn(
        "Add",
        Field("_pad0", 4), Field("a_addr", 16), Field("b_addr", 16), Field("dst", 16),
        Field("count", 16), Field("param_addr", 16),
    ),
}

#: Every layout by opcode value (versions 2 and 3).
ALL_LAYOUTS = {**LAYOUTS, **CNN_LAYOUTS}

#: Layout of one parameter-buffer entry (9 bytes).
PARAM_LAYOUT = BitLayout("ChannelParams", (
    Field("bias", 32, signed=True),
    Field("multiplier", 32),
    Field("shift", 8, signed=True),
))


class ProgramError(ValueError):
    """An encoded program is malformed (unknown opcode, truncated instruction or payload)."""


@dataclass(frozen=True)
class Instruction:
    """Base class of decoded instructions."""

    opcode = None

    def fields(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "payload"}

    def encode(self) -> bytes:
        return encode(self)


@dataclass(frozen=True)
class Nop(Instruction):
    opcode = Opcode.NOP


@dataclass(frozen=True)
class Sync(Instruction):
    """Wait until the GEMM engine and the drain unit are idle."""

    opcode = Opcode.SYNC


@dataclass(frozen=True)
class Load(Instruction):
    """Write ``count`` entries of ``buffer`` from ``addr``; the bytes follow the instruction."""

    opcode = Opcode.LOAD
    buffer: Buffer
    addr: int
    count: int
    payload: bytes = b""


@dataclass(frozen=True)
class Gemm(Instruction):
    """Accumulate ``k`` steps of act[a_addr+i] (x) wgt[w_addr+i]; optionally drain the tile."""

    opcode = Opcode.GEMM
    a_addr: int
    w_addr: int
    k: int
    out_addr: int = 0
    param_addr: int = 0
    m_rows: int = 1
    n_cols: int = 1
    clear: bool = True
    drain: bool = True


@dataclass(frozen=True)
class Post(Instruction):
    """Set the post-processing state used by subsequently issued GEMM drains.

    ``zero_point``, ``lo`` and ``hi`` are s16 fields whose values must lie in the configuration's
    ``output_bits`` range (the defaults are the int8 one).
    """

    opcode = Opcode.POST
    mode: Mode = Mode.ONNX
    lut: bool = False
    zero_point: int = 0
    lo: int = -128
    hi: int = 127


@dataclass(frozen=True)
class Store(Instruction):
    """Return ``count`` activation entries from ``addr`` in the response; last in its frame."""

    opcode = Opcode.STORE
    addr: int
    count: int


@dataclass(frozen=True)
class Window(Instruction):
    """Set the window state of the following ``CONV``s (ISA version 3)."""

    opcode = CnnOpcode.WINDOW
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    kernel_h: int = 1
    kernel_w: int = 1
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    pad_value: int = 0


@dataclass(frozen=True)
class Conv(Instruction):
    """Run one layer over the window state: input map at ``src``, output map at ``dst``."""

    opcode = CnnOpcode.CONV
    kind: ConvKind
    src: int
    dst: int
    w_addr: int = 0
    param_addr: int = 0


@dataclass(frozen=True)
class Add(Instruction):
    """Element-wise TFLite ADD of ``count`` ACT entries (ISA version 3, mode "tflite")."""

    opcode = CnnOpcode.ADD
    a_addr: int
    b_addr: int
    dst: int
    count: int
    param_addr: int = 0


_CLASSES = {cls.opcode: cls for cls in (Nop, Sync, Load, Gemm, Post, Store, Window, Conv, Add)}


def encode(insn: Instruction) -> bytes:
    """Return the 16 encoding bytes of ``insn`` followed by its payload (for ``LOAD``)."""
    layout = ALL_LAYOUTS[insn.opcode]
    values = {k: int(v) for k, v in insn.fields().items()}
    word = layout.to_bytes(opcode=int(insn.opcode), **values)
    if isinstance(insn, Load):
        return word + bytes(insn.payload)
    return word


def decode(word: bytes) -> Instruction:
    """Decode 16 bytes into an instruction (``LOAD`` with an empty payload)."""
    if len(word) != INSN_BYTES:
        raise ProgramError(f"An instruction is {INSN_BYTES} bytes, got {len(word)}")
    value = int.from_bytes(word, "little")
    if value & 0xF not in ALL_LAYOUTS:
        raise ProgramError(f"Unknown opcode {value & 0xF}")
    opcode = value & 0xF
    opcode = Opcode(opcode) if opcode in LAYOUTS else CnnOpcode(opcode)
    fields = ALL_LAYOUTS[opcode].unpack(value)
    del fields["opcode"]
    fields = {k: v for k, v in fields.items() if not k.startswith("_")}
    cls = _CLASSES[opcode]
    if opcode == Opcode.LOAD:
        try:
            fields["buffer"] = Buffer(fields["buffer"])
        except ValueError:
            raise ProgramError(f"LOAD names unknown buffer {fields['buffer']}") from None
    if opcode == Opcode.GEMM:
        fields["clear"], fields["drain"] = bool(fields["clear"]), bool(fields["drain"])
    if opcode == Opcode.POST:
        fields["mode"], fields["lut"] = Mode(fields["mode"]), bool(fields["lut"])
    if opcode == CnnOpcode.CONV:
        try:
            fields["kind"] = ConvKind(fields["kind"])
        except ValueError:
            raise ProgramError(f"CONV names unknown kind {fields['kind']}") from None
    return cls(**fields)


def decode_program(program: bytes, config) -> list:
    """Split an encoded program into instructions, attaching each ``LOAD``'s payload.

    ``config`` (an :class:`~tessera.spec.AcceleratorConfig`) gives the entry size of each buffer.
    """
    out, pos, program = [], 0, bytes(program)
    while pos < len(program):
        if pos + INSN_BYTES > len(program):
            raise ProgramError(f"Truncated instruction at byte {pos}: "
                               f"{len(program) - pos} of {INSN_BYTES} bytes")
        insn = decode(program[pos:pos + INSN_BYTES])
        pos += INSN_BYTES
        if isinstance(insn, Load):
            size = insn.count * config.entry_bytes(insn.buffer)
            if pos + size > len(program):
                raise ProgramError(f"LOAD at byte {pos - INSN_BYTES} carries {size} payload bytes "
                                   f"but only {len(program) - pos} follow")
            insn = Load(insn.buffer, insn.addr, insn.count, program[pos:pos + size])
            pos += size
        out.append(insn)
    return out
