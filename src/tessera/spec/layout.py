"""Dependency-free bit layouts, declared once and shared by host and gateware.

A :class:`BitLayout` is an ordered list of fields packed LSB first in declaration order -- the
same rule as an Amaranth ``data.StructLayout``. The gateware builds its ``StructLayout`` from
these declarations (``tessera.hw.layouts``), and the tests check the host packer against
Amaranth's ``Layout.const`` bit for bit, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Field", "BitLayout"]


@dataclass(frozen=True)
class Field:
    """One field of a :class:`BitLayout`: a name, a width in bits and a signedness."""

    name: str
    width: int
    signed: bool = False

    @property
    def min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


class BitLayout:
    """An ordered, packed set of fields.

    Parameters
    ----------
    name : str
        Name used in error messages and documentation.
    fields : iterable of Field
        Fields, least significant first.
    width : int, optional
        Total width; padded with zeros up to it. Defaults to the sum of field widths.
    """

    def __init__(self, name, fields, *, width=None):
        self.name = name
        self.fields = tuple(fields)
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: duplicate field names in {names}")
        used = sum(f.width for f in self.fields)
        self.width = used if width is None else width
        if used > self.width:
            raise ValueError(f"{name}: fields need {used} bits but the layout is {self.width}")
        offsets, offset = {}, 0
        for f in self.fields:
            offsets[f.name] = offset
            offset += f.width
        self.offsets = offsets

    def __repr__(self):
        return f"BitLayout({self.name!r}, {self.width} bits)"

    def __iter__(self):
        return iter(self.fields)

    def field(self, name) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def nbytes(self) -> int:
        return (self.width + 7) // 8

    def pack(self, **values) -> int:
        """Return the packed integer. Missing fields are zero; out-of-range values are an error."""
        unknown = set(values) - set(self.offsets)
        if unknown:
            raise ValueError(f"{self.name} has no field(s) {', '.join(sorted(unknown))}")
        word = 0
        for f in self.fields:
            v = values.get(f.name, 0)
            v = int(v)
            if not f.min <= v <= f.max:
                raise ValueError(f"{self.name}.{f.name} must be in [{f.min}, {f.max}], not {v}")
            word |= (v & ((1 << f.width) - 1)) << self.offsets[f.name]
        return word

    def unpack(self, word: int) -> dict:
        """Return ``{field: value}`` for a packed integer (signed fields sign-extended)."""
        out = {}
        for f in self.fields:
            v = (word >> self.offsets[f.name]) & ((1 << f.width) - 1)
            if f.signed and v >> (f.width - 1):
                v -= 1 << f.width
            out[f.name] = v
        return out

    def to_bytes(self, **values) -> bytes:
        """Return the packed value as little-endian bytes."""
        return self.pack(**values).to_bytes(self.nbytes, "little")

    def from_bytes(self, data: bytes) -> dict:
        """Unpack little-endian bytes (exactly :attr:`nbytes` of them)."""
        if len(data) != self.nbytes:
            raise ValueError(f"{self.name} is {self.nbytes} bytes, got {len(data)}")
        return self.unpack(int.from_bytes(data, "little"))
