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
from dataclasses import dataclass, field

__all__ = ["AcceleratorConfig", "REQUANT_MODES", "PARAM_ENTRY_BYTES"]

#: Requantization modes, in the order of their encoding in the ``POST`` instruction.
REQUANT_MODES = ("onnx", "tflite")

#: Bytes in one per-channel parameter entry: bias (s32), multiplier (u32), shift (s8).
PARAM_ENTRY_BYTES = 9

_MAX_ADDR_DEPTH = 1 << 16  # buffer addresses are 16-bit fields in the ISA


def _check_int(name, value, *, lo, hi=None, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or \
            (hi is not None and value > hi):
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
        Operand widths. This version implements 8 (signed int8).
    acc_bits : int
        Accumulator width. This version implements 32.
    act_depth : int
        Entries in the activation buffer; one entry holds one *k* of ``rows`` activations.
        Layer outputs are written back here, so layers chain on chip.
    weight_depth : int
        Entries in the weight buffer; one entry holds one *k* of ``cols`` weights.
    param_depth : int
        Entries in the per-output-channel parameter buffer (bias, multiplier, shift).
    max_payload : int
        Largest frame payload in bytes, in either direction (the size of the receive buffer).
    requant_modes : tuple of str
        Requantization modes built into the hardware, a non-empty subset of ``("onnx", "tflite")``.
    lut : bool
        Whether the 256-entry int8 activation lookup table is built.
    counter_bits : int
        Width of each performance counter.
    rx_timeout_cycles : int
        Idle cycles after which a partially received frame is discarded.
    """

    rows: int = 8
    cols: int = 8
    input_bits: int = 8
    weight_bits: int = 8
    acc_bits: int = 32
    act_depth: int = 2048
    weight_depth: int = 2048
    param_depth: int = 512
    max_payload: int = 1024
    requant_modes: tuple = field(default=REQUANT_MODES)
    lut: bool = True
    counter_bits: int = 48
    rx_timeout_cycles: int = 1 << 20

    def __post_init__(self):
        _check_int("rows", self.rows, lo=1, hi=64, what="Row count")
        _check_int("cols", self.cols, lo=1, hi=64, what="Column count")
        for name in ("input_bits", "weight_bits"):
            value = getattr(self, name)
            if value != 8:
                raise ValueError(f"{name} must be 8 (int8 operands are what this version "
                                 f"implements), not {value!r}")
        if self.acc_bits != 32:
            raise ValueError(f"acc_bits must be 32 (int32 accumulators are what this version "
                             f"implements), not {self.acc_bits!r}")
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
        if isinstance(modes, str):
            modes = (modes,)
        modes = tuple(modes)
        if not modes or any(m not in REQUANT_MODES for m in modes) or len(set(modes)) != len(modes):
            raise ValueError(f"Requant modes must be a non-empty subset of {REQUANT_MODES}, "
                             f"not {self.requant_modes!r}")
        # Canonical order, so that equal configs hash equally.
        object.__setattr__(self, "requant_modes", tuple(m for m in REQUANT_MODES if m in modes))
        if not isinstance(self.lut, bool):
            raise ValueError(f"lut must be True or False, not {self.lut!r}")
        _check_int("counter_bits", self.counter_bits, lo=16, hi=64, what="Counter width")
        _check_int("rx_timeout_cycles", self.rx_timeout_cycles, lo=16, hi=(1 << 32) - 1,
                   what="Receive timeout")

    # -- derived values (never stored twice) -------------------------------------------------

    @property
    def peak_macs_per_cycle(self) -> int:
        """MACs the array performs per cycle at full utilisation."""
        return self.rows * self.cols

    @property
    def act_entry_bytes(self) -> int:
        """Bytes in one activation-buffer entry (``rows`` operands)."""
        return self.rows * self.input_bits // 8

    @property
    def weight_entry_bytes(self) -> int:
        """Bytes in one weight-buffer entry (``cols`` operands)."""
        return self.cols * self.weight_bits // 8

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

    @classmethod
    def load(cls, path) -> "AcceleratorConfig":
        """Read a configuration from a JSON file."""
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
