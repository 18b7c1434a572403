"""Amaranth layouts built from the bit-layout declarations in :mod:`tessera.spec`.

The instruction formats, the parameter entry and the protocol records are declared exactly once,
as :class:`tessera.spec.BitLayout` objects (``isa.LAYOUTS``, ``isa.PARAM_LAYOUT``,
``protocol.ID_LAYOUT`` ...). The gateware never re-declares a field: it converts those
declarations here, so the host packer and the hardware decoder cannot drift apart
(``tests/test_hw_layouts.py`` checks them bit for bit against ``Layout.const``).
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from tessera.spec import BitLayout, isa, protocol

__all__ = [
    "TAIL_FIELD", "struct_layout",
    "INSN_LAYOUTS", "CNN_INSN_LAYOUTS", "PARAM_ENTRY", "ERROR_RECORD", "READ_REQUEST", "ID_RECORD",
]

#: Name of the padding field added when a :class:`BitLayout` is wider than its fields (the
#: 128-bit instructions): the ISA requires those bits to be zero, so the decoder checks it.
TAIL_FIELD = "_tail"


def struct_layout(bit_layout: BitLayout) -> data.StructLayout:
    """Return the ``data.StructLayout`` equivalent of ``bit_layout``.

    Fields keep their names, widths, signedness and LSB-first order. When the declared width
    exceeds the sum of the field widths, a trailing unsigned field named :data:`TAIL_FIELD`
    covers the remaining bits, so that ``layout.size == bit_layout.width``.

    Parameters
    ----------
    bit_layout : tessera.spec.BitLayout
        The declaration to convert.

    Raises
    ------
    TypeError
        If ``bit_layout`` is not a :class:`~tessera.spec.BitLayout`.
    ValueError
        If a field is already named :data:`TAIL_FIELD` while padding is needed.
    """
    if not isinstance(bit_layout, BitLayout):
        raise TypeError(f"Expected a tessera.spec.BitLayout, not {bit_layout!r}")
    members = {}
    for field in bit_layout.fields:
        members[field.name] = signed(field.width) if field.signed else unsigned(field.width)
    used = sum(field.width for field in bit_layout.fields)
    if used < bit_layout.width:
        if TAIL_FIELD in members:
            raise ValueError(f"{bit_layout.name} already has a field named {TAIL_FIELD!r}; "
                             f"rename it so the padding field can be added")
        members[TAIL_FIELD] = unsigned(bit_layout.width - used)
    return data.StructLayout(members)


#: Instruction layouts (128 bits each), by :class:`tessera.spec.isa.Opcode`.
INSN_LAYOUTS = {opcode: struct_layout(layout) for opcode, layout in isa.LAYOUTS.items()}
#: The ISA version 3 instruction layouts (``WINDOW``, ``CONV``, ``ADD``), by
#: :class:`tessera.spec.isa.CnnOpcode`.
CNN_INSN_LAYOUTS = {opcode: struct_layout(layout) for opcode, layout in isa.CNN_LAYOUTS.items()}
#: One parameter-buffer entry (bias, multiplier, shift).
PARAM_ENTRY = struct_layout(isa.PARAM_LAYOUT)
#: Payload of an error response.
ERROR_RECORD = struct_layout(protocol.ERROR_LAYOUT)
#: Payload of a ``READ`` request.
READ_REQUEST = struct_layout(protocol.READ_LAYOUT)
#: Payload of the ``HELLO`` response.
ID_RECORD = struct_layout(protocol.ID_LAYOUT)
