"""The one configuration object every layer of Tessera is derived from.

`AcceleratorConfig` describes a Tessera accelerator instance: array shape, operand widths, on-chip
buffer depths, the host-link frame size and the optional post-processing features. The gateware
is elaborated from it, the compiler tiles for it, the emulator models it and the tests parametrise
over it. It is frozen and validated on construction, round-trips through JSON, and has a stable
hash that the gateware exposes in its ID record so the host can refuse a mismatched bitstream.

This module has no dependencies beyond the standard library.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from dataclasses import dataclass

__all__ = ["AcceleratorConfig", "REQUANT_MODES", "PARAM_ENTRY_BYTES", "OPERAND_BITS", "ACC_BITS",
           "MAX_REQUANT_CYCLES", "check_operand_bits", "operand_range", "pack_operands",
           "unpack_operands"]

#: Requantization modes, in the order of their encoding in the ``POST`` instruction.
REQUANT_MODES = ("onnx", "tflite")

#: Bytes in one per-channel parameter entry: bias (s32), multiplier (u32), shift (s8).
PARAM_ENTRY_BYTES = 9

#: Operand (activation and weight) widths. The whole stack (numerics, quantizer, compiler,
#: emulator, gateware) implements each of them and every mix of input and weight width.
#: Activations between layers are ``input_bits`` wide too: a layer's output is the next layer's
#: input.
OPERAND_BITS = (4, 8, 16)

#: Accumulator widths the stack implements.
ACC_BITS = (32, 48)

_MAX_ADDR_DEPTH = 1 << 16  # buffer addresses are 16-bit fields in the ISA

#: Largest ``requant_cycles``: one bit of the 24-bit mantissa per cycle.
MAX_REQUANT_CYCLES = 24

#: Fields :meth:`AcceleratorConfig.to_dict` omits at these (default) values.
_OMITTED_AT_DEFAULT = {"requant_cycles": 1, "cnn": False, "drain_lanes": 1, "act_bank_lanes": 1}


def _is_integer(value) -> bool:
    """Return whether ``value`` is a Python or NumPy integer (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_operand_bits(name, value) -> int:
    """Return ``value`` as an ``int`` if it is one of :data:`OPERAND_BITS`, else raise.

    Python and NumPy integers are accepted; bools, floats (even ``8.0``) and anything else raise
    ``ValueError`` with a message naming ``name``.
    """
    if not _is_integer(value) or int(value) not in OPERAND_BITS:
        hint = ""
        if isinstance(value, numbers.Real) and not _is_integer(value) and value in OPERAND_BITS:
            hint = f" (a float; pass the integer {int(value)})"
        raise ValueError(f"{name} must be one of {OPERAND_BITS}, not {value!r}{hint}")
    return int(value)


def _check_int(name, value, *, lo, hi=None, what):
    if not _is_integer(value) or value < lo or (hi is not None and value > hi):
        bound = f"an integer from {lo} to {hi}" if hi is not None else \
            ("a positive integer" if lo == 1 else f"an integer of at least {lo}")
        raise ValueError(f"{what} must be {bound}, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class AcceleratorConfig:
    """Parameters of one accelerator instance.

    Parameters
    ----------
    rows, cols : int
        Shape of the MAC array. One GEMM step multiplies a ``rows``-vector of activations (one per
        output row *m*) by a ``cols``-vector of weights (one per output column *n*): ``rows*cols``
        MACs per cycle.
    input_bits, weight_bits : int
        Operand widths, each 4, 8 or 16 (signed, two's complement; see :func:`pack_operands`).
        Layer outputs are ``input_bits`` wide (they are the next layer's input).
    acc_bits : int, optional
        Accumulator width, 32 or 48. Unset: 32 when ``input_bits + weight_bits <= 24``, else
        48. It must hold at least 2^8 worst-case products.
    act_depth : int
        Entries in the activation buffer; one entry holds one *k* of ``rows`` activations.
        Layer outputs are written back here, so layers chain on chip.
    weight_depth : int
        Entries in the weight buffer; one entry holds one *k* of ``cols`` weights.
    param_depth : int
        Entries in the per-output-channel parameter buffer (bias, multiplier, shift).
    max_payload : int
        Largest frame payload in bytes, in either direction (the size of the receive buffer).
    requant_modes : tuple of str, optional
        Requantization modes built into the hardware, a non-empty subset of ``("onnx", "tflite")``.
        ``"tflite"`` needs ``acc_bits == 32``. Unset: every mode the accumulator allows.
    lut : bool, optional
        Whether the 256-entry int8 activation lookup table is built (8-bit activations only).
        Unset: built when ``input_bits == 8``.
    counter_bits : int
        Width of each performance counter.
    requant_cycles : int
        Cycles per element of the requant unit's product, 1 to 24 (one requant mode; mode
        ``"tflite"`` with ``cnn`` only). 1: fully pipelined, one element per cycle, the product
        on hardware multipliers. ``c > 1``: an iterative multiplier adds one digit per cycle,
        so only a ``24 x ceil(24 / c)`` product (``"onnx"``) or a ``32 x ceil(32 / c)`` one
        (``"tflite"``) is built (for parts whose multipliers all serve the MAC array); a drain
        then takes ``m_rows * n_cols * c + DRAIN_OVERHEAD_CYCLES`` cycles. Left out of
        :meth:`to_dict` (and so of :attr:`hash`) when 1.
    rx_timeout_cycles : int
        Idle cycles after which a partially received frame is discarded.
    cnn : bool
        Whether the convolution features of ISA version 3 are built (``WINDOW``, ``CONV``,
        ``ADD``: docs/isa.md); needs 8-bit operands. The emulator and the RTL (in simulation)
        run them; ``tessera build --preset`` builds them (docs/boards.md: orangecrab-25f-cnn
        meets timing, the others not yet, issue #15). Left out of :meth:`to_dict` when False,
        like the two fields below at 1.
    drain_lanes : int
        Elements the drain post-processes per cycle, 1 to ``rows`` (``cnn`` only): a drain takes
        ``ceil(m_rows / drain_lanes) * n_cols * requant_cycles + DRAIN_OVERHEAD_CYCLES`` cycles.
    act_bank_lanes : int
        Lanes of ``ACT`` that share one address (one memory bank), a divisor of ``rows``
        (``cnn`` only): the gather of a ``CONV`` reads one entry per bank per cycle.
    """

    rows: int = 8
    cols: int = 8
    input_bits: int = 8
    weight_bits: int = 8
    acc_bits: int = None
    act_depth: int = 2048
    weight_depth: int = 2048
    param_depth: int = 512
    max_payload: int = 1024
    requant_modes: tuple = None
    lut: bool = None
    counter_bits: int = 48
    rx_timeout_cycles: int = 1 << 20
    requant_cycles: int = 1
    cnn: bool = False
    drain_lanes: int = 1
    act_bank_lanes: int = 1

    def __post_init__(self):
        for field in dataclasses.fields(self):   # NumPy integers are stored as int (JSON, hash)
            value = getattr(self, field.name)
            if field.type == "int" and _is_integer(value):
                object.__setattr__(self, field.name, int(value))
        _check_int("rows", self.rows, lo=1, hi=64, what="Row count")
        _check_int("cols", self.cols, lo=1, hi=64, what="Column count")
        for name in ("input_bits", "weight_bits"):
            check_operand_bits(name, getattr(self, name))
        self._resolve_widths()
        _check_int("act_depth", self.act_depth, lo=1, hi=_MAX_ADDR_DEPTH,
                   what="Activation buffer depth")
        _check_int("weight_depth", self.weight_depth, lo=1, hi=_MAX_ADDR_DEPTH,
                   what="Weight buffer depth")
        _check_int("param_depth", self.param_depth, lo=1, hi=_MAX_ADDR_DEPTH,
                   what="Parameter buffer depth")
        min_payload = 16 + max(self.act_entry_bytes, self.weight_entry_bytes, PARAM_ENTRY_BYTES)
        _check_int("max_payload", self.max_payload, lo=max(64, min_payload), hi=0xFFFF,
                   what="Maximum frame payload")
        modes = self.requant_modes
        if modes is None:  # automatic: every mode the accumulator width allows
            modes = REQUANT_MODES if self.acc_bits == 32 else ("onnx",)
        if isinstance(modes, str):
            modes = (modes,)
        modes = tuple(modes)
        if not modes or any(m not in REQUANT_MODES for m in modes) or len(set(modes)) != len(modes):
            raise ValueError(f"Requant modes must be a non-empty subset of {REQUANT_MODES}, "
                             f"not {self.requant_modes!r}")
        # Canonical order, so that equal configs hash equally.
        object.__setattr__(self, "requant_modes", tuple(m for m in REQUANT_MODES if m in modes))
        if "tflite" in self.requant_modes and self.acc_bits != 32:
            raise ValueError(f"Requant mode 'tflite' needs acc_bits=32 (its fixed-point multiply "
                             f"takes int32 accumulators), not {self.acc_bits}; use "
                             "requant_modes=('onnx',) or narrower operands")
        if self.lut is None:  # automatic: the table exists where it applies
            object.__setattr__(self, "lut", self.input_bits == 8)
        if not isinstance(self.lut, bool):
            raise ValueError(f"lut must be True or False, not {self.lut!r}")
        if self.lut and self.input_bits != 8:
            raise ValueError(f"lut=True needs 8-bit activations (the table has 256 entries), "
                             f"not input_bits={self.input_bits}; pass lut=False")
        _check_int("counter_bits", self.counter_bits, lo=16, hi=64, what="Counter width")
        _check_int("rx_timeout_cycles", self.rx_timeout_cycles, lo=16, hi=(1 << 32) - 1,
                   what="Receive timeout")
        _check_int("requant_cycles", self.requant_cycles, lo=1, hi=MAX_REQUANT_CYCLES,
                   what="Requant cycles per element")
        if not isinstance(self.cnn, bool):
            raise ValueError(f"cnn must be True or False, not {self.cnn!r}")
        if self.cnn and (self.input_bits, self.weight_bits) != (8, 8):
            raise ValueError(f"cnn=True needs 8-bit operands (input_bits=8, weight_bits=8), not "
                             f"{self.input_bits}/{self.weight_bits}")
        _check_int("drain_lanes", self.drain_lanes, lo=1, hi=self.rows, what="Drain lanes")
        _check_int("act_bank_lanes", self.act_bank_lanes, lo=1, hi=self.rows,
                   what="ACT bank lanes")
        if self.rows % self.act_bank_lanes:
            raise ValueError(f"ACT bank lanes must divide the row count {self.rows}, not "
                             f"{self.act_bank_lanes}")
        if not self.cnn and (self.drain_lanes, self.act_bank_lanes) != (1, 1):
            raise ValueError(f"drain_lanes and act_bank_lanes other than 1 need cnn=True (the "
                             f"ISA version 3 datapath), not drain_lanes={self.drain_lanes}, "
                             f"act_bank_lanes={self.act_bank_lanes}")
        if self.requant_cycles > 1 and "tflite" in self.requant_modes and not self.cnn:
            raise ValueError(f"requant_cycles={self.requant_cycles} (an iterative requant "
                             f"multiplier) is implemented for mode 'onnx' only; use "
                             f"requant_modes=('onnx',) or requant_cycles=1")
        if self.requant_cycles > 1 and len(self.requant_modes) > 1:
            raise ValueError(f"requant_cycles={self.requant_cycles} (an iterative requant "
                             f"multiplier) builds one requant mode, not "
                             f"{self.requant_modes!r}; pass requant_modes=('onnx',) or "
                             f"('tflite',)")

    def _resolve_widths(self):
        """Pick ``acc_bits`` when it is ``None``, then check it can hold the products."""
        product_bits = self.input_bits + self.weight_bits
        if self.acc_bits is None:
            object.__setattr__(self, "acc_bits", 32 if product_bits <= 24 else 48)
        if not _is_integer(self.acc_bits) or self.acc_bits not in ACC_BITS:
            raise ValueError(f"acc_bits must be one of {ACC_BITS}, not {self.acc_bits!r}")
        # At least 2^8 worst-case products must fit, or no real layer compiles.
        if product_bits + 8 > self.acc_bits:
            terms = 1 << (self.acc_bits - product_bits + 1)
            raise ValueError(f"acc_bits={self.acc_bits} holds only {terms} worst-case "
                             f"{self.input_bits}x{self.weight_bits}-bit products; use "
                             f"acc_bits=48 (or leave acc_bits unset to pick it automatically)")

    # -- derived values (never stored twice) -------------------------------------------------

    @property
    def peak_macs_per_cycle(self) -> int:
        """MACs the array performs per cycle at full utilisation."""
        return self.rows * self.cols

    @property
    def isa_version(self) -> int:
        """The ISA version this configuration implements and reports in ``HELLO``: 3 with
        :attr:`cnn`, else 2 (docs/isa.md)."""
        from .isa import CNN_ISA_VERSION, ISA_VERSION
        return CNN_ISA_VERSION if self.cnn else ISA_VERSION

    def drain_cycles(self, m_rows, n_cols, per_element=None) -> int:
        """Return the cycles a drain of ``m_rows x n_cols`` elements occupies the drain unit.

        ``per_element`` defaults to :attr:`requant_cycles`
        (:data:`tessera.spec.timing.DRAIN_OVERHEAD_CYCLES` is added).
        """
        from .timing import DRAIN_OVERHEAD_CYCLES
        q = self.requant_cycles if per_element is None else per_element
        lanes = -(-m_rows // self.drain_lanes)
        return lanes * n_cols * q + DRAIN_OVERHEAD_CYCLES

    @property
    def output_bits(self) -> int:
        """Width of a layer output: ``input_bits`` (it is the next layer's input)."""
        return self.input_bits

    @property
    def act_entry_bytes(self) -> int:
        """Bytes in one activation-buffer entry (``rows`` operands, see :func:`pack_operands`)."""
        return (self.rows * self.input_bits + 7) // 8

    @property
    def weight_entry_bytes(self) -> int:
        """Bytes in one weight-buffer entry (``cols`` operands, see :func:`pack_operands`)."""
        return (self.cols * self.weight_bits + 7) // 8

    def with_widths(self, input_bits, weight_bits=None) -> "AcceleratorConfig":
        """Return a copy with new operand widths and the width-dependent fields re-derived.

        ``acc_bits``, ``requant_modes`` and ``lut`` are chosen again as for a new configuration
        (``weight_bits`` defaults to ``input_bits``), but a requant mode or the LUT is kept only
        where it applies: ``"tflite"`` needs 32-bit accumulators, the LUT 8-bit activations.
        """
        weight_bits = input_bits if weight_bits is None else weight_bits
        probe = self.replace(input_bits=input_bits, weight_bits=weight_bits, acc_bits=None,
                             requant_modes=None, lut=None, requant_cycles=1)
        modes = tuple(m for m in self.requant_modes if probe.supports(m)) or probe.requant_modes
        return probe.replace(requant_modes=modes, lut=self.lut and probe.lut,
                             requant_cycles=self.requant_cycles)

    @property
    def param_entry_bytes(self) -> int:
        """Bytes in one parameter-buffer entry."""
        return PARAM_ENTRY_BYTES

    def entry_bytes(self, buffer) -> int:
        """Return the bytes per entry of ``buffer`` (a :class:`tessera.spec.isa.Buffer`)."""
        from .isa import Buffer
        return {
            Buffer.ACT: self.act_entry_bytes,
            Buffer.WGT: self.weight_entry_bytes,
            Buffer.PARAM: PARAM_ENTRY_BYTES,
            Buffer.LUT: 1,
        }[Buffer(buffer)]

    def depth(self, buffer) -> int:
        """Return the number of entries of ``buffer``."""
        from .isa import Buffer
        return {
            Buffer.ACT: self.act_depth,
            Buffer.WGT: self.weight_depth,
            Buffer.PARAM: self.param_depth,
            Buffer.LUT: 256 if self.lut else 0,
        }[Buffer(buffer)]

    def max_load_entries(self, buffer) -> int:
        """Return the most entries one ``LOAD`` can carry so that it fits in one frame."""
        from .isa import INSN_BYTES
        return (self.max_payload - INSN_BYTES) // self.entry_bytes(buffer)

    @property
    def max_store_entries(self) -> int:
        """Return the most activation entries one ``STORE`` response can carry."""
        return self.max_payload // self.act_entry_bytes

    def supports(self, mode: str) -> bool:
        """Return whether requant ``mode`` is built into this configuration."""
        return mode in self.requant_modes

    # -- serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Return the configuration as a JSON-compatible dict."""
        d = dataclasses.asdict(self)
        d["requant_modes"] = list(self.requant_modes)
        # Fields added after the first release are left out at their default value, so the
        # canonical JSON and the hash of every configuration that does not use them stay
        # unchanged.
        for name, default in _OMITTED_AT_DEFAULT.items():
            if d[name] == default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "AcceleratorConfig":
        """Build a configuration from :meth:`to_dict` output; unknown keys are an error."""
        if not isinstance(data, dict):
            raise TypeError(f"Configuration must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown configuration field(s) {', '.join(unknown)}; "
                             f"known fields are {', '.join(sorted(known))}")
        data = dict(data)
        if "requant_modes" in data and isinstance(data["requant_modes"], list):
            data["requant_modes"] = tuple(data["requant_modes"])
        return cls(**data)

    def to_json(self) -> str:
        """Return the canonical JSON text (sorted keys, no whitespace)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "AcceleratorConfig":
        """Parse JSON text produced by :meth:`to_json` (or written by hand)."""
        return cls.from_dict(json.loads(text))

    def save(self, path) -> None:
        """Write the configuration to the JSON file ``path`` (:meth:`to_json`, one line).

        ``tessera build``, ``run``, ``compile``, ``verilog`` and ``info`` read it with
        ``--config``; docs/quickstart.md shows the format.
        """
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json() + "\n")

    @classmethod
    def load(cls, path) -> "AcceleratorConfig":
        """Read a configuration from a JSON file (written by :meth:`save` or by hand)."""
        with open(path, encoding="utf-8") as f:
            try:
                return cls.from_json(f.read())
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from None

    @property
    def hash(self) -> int:
        """Stable 64-bit hash of the configuration (first 8 bytes of SHA-256 of the JSON)."""
        digest = hashlib.sha256(self.to_json().encode()).digest()
        return int.from_bytes(digest[:8], "little")

    @property
    def hash_hex(self) -> str:
        """:attr:`hash` as 16 hexadecimal digits."""
        return f"{self.hash:016x}"

    def replace(self, **changes) -> "AcceleratorConfig":
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


def operand_range(bits) -> tuple[int, int]:
    """Return ``(lo, hi)`` of a signed ``bits``-wide operand: ``(-2**(bits-1), 2**(bits-1)-1)``."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def pack_operands(values, bits) -> bytes:
    """Return the entry bytes of ``values`` (signed ints), each ``bits`` wide — THE packing.

    Operand *i* occupies bits ``[i*bits, (i+1)*bits)`` of the little-endian entry: 16-bit operands
    are two bytes, low byte first; 4-bit operands are packed two per byte, operand *2j* in the low
    nibble of byte *j*. A final half-used byte is padded with zero bits. The gateware's memories
    hold the same bits (entry bit ``i*bits + b`` = bit *b* of operand *i*).
    """
    lo, hi = operand_range(bits)
    word = 0
    mask = (1 << bits) - 1
    values = [int(v) for v in values]
    for i, v in enumerate(values):
        if not lo <= v <= hi:
            raise ValueError(f"Operand {i} = {v} does not fit {bits} bits [{lo}, {hi}]")
        word |= (v & mask) << (i * bits)
    return word.to_bytes((len(values) * bits + 7) // 8, "little")


def unpack_operands(data, count, bits) -> list:
    """Return the ``count`` signed operands packed in ``data`` by :func:`pack_operands`."""
    word = int.from_bytes(bytes(data), "little")
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    out = []
    for i in range(count):
        v = (word >> (i * bits)) & mask
        out.append(v - (1 << bits) if v & sign else v)
    return out
