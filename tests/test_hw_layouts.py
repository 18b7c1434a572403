"""hw/layouts.py: the Amaranth layouts equal the spec's host packer bit for bit."""

import random

import pytest
from amaranth.lib import data

from tessera.hw import layouts
from tessera.hw.layouts import TAIL_FIELD, struct_layout
from tessera.spec import BitLayout, Field, isa, protocol

ALL_LAYOUTS = ([(f"insn:{op.name}", lay) for op, lay in isa.ALL_LAYOUTS.items()] +
               [("PARAM", isa.PARAM_LAYOUT), ("ERROR", protocol.ERROR_LAYOUT),
                ("READ", protocol.READ_LAYOUT), ("ID", protocol.ID_LAYOUT)])


def _random_values(bit_layout, rng):
    values = {}
    for f in bit_layout.fields:
        choice = rng.randrange(4)
        values[f.name] = (f.min, f.max, 0, rng.randint(f.min, f.max))[choice]
    return values


@pytest.mark.parametrize("name, bit_layout", ALL_LAYOUTS, ids=[n for n, _ in ALL_LAYOUTS])
def test_host_packer_equals_amaranth_const(name, bit_layout):
    layout = struct_layout(bit_layout)
    assert isinstance(layout, data.StructLayout)
    assert layout.size == bit_layout.width
    rng = random.Random(name)
    for _ in range(300):
        values = _random_values(bit_layout, rng)
        word = bit_layout.pack(**values)
        const = layout.const(values)
        assert const.as_value().value == word, values
        # Decoding the host's word with the Amaranth layout gives the fields back.
        decoded = layout.from_bits(word)
        for f in bit_layout.fields:
            assert decoded[f.name] == values[f.name], (f.name, values)
        assert bit_layout.unpack(const.as_value().value) == values
        if TAIL_FIELD in layout.members:
            assert decoded[TAIL_FIELD] == 0


@pytest.mark.parametrize("name, bit_layout", ALL_LAYOUTS, ids=[n for n, _ in ALL_LAYOUTS])
def test_field_offsets_and_signedness(name, bit_layout):
    layout = struct_layout(bit_layout)
    for f in bit_layout.fields:
        member = layout[f.name]
        assert member.offset == bit_layout.offsets[f.name]
        assert member.width == f.width
        assert member.shape.signed == f.signed


def test_instruction_tail_covers_the_unused_bits():
    load = struct_layout(isa.LAYOUTS[isa.Opcode.LOAD])
    assert load[TAIL_FIELD].offset == 40 and load[TAIL_FIELD].width == 88
    # A set tail bit is visible to the decoder (the ISA requires it to be zero).
    view = load.from_bits(1 << 100)
    assert view[TAIL_FIELD] == 1 << 60


def test_module_constants_are_the_spec_layouts():
    assert layouts.INSN_LAYOUTS[isa.Opcode.GEMM] == struct_layout(isa.LAYOUTS[isa.Opcode.GEMM])
    assert layouts.CNN_INSN_LAYOUTS[isa.CnnOpcode.CONV] == \
        struct_layout(isa.CNN_LAYOUTS[isa.CnnOpcode.CONV])
    assert layouts.PARAM_ENTRY.size == isa.PARAM_LAYOUT.width == 72
    assert layouts.ID_RECORD.size == 8 * len(protocol.encode_id(__import__("tessera").spec
                                                                 .AcceleratorConfig()))


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"Expected a tessera.spec.BitLayout, not 42"):
        struct_layout(42)
    clash = BitLayout("Clash", (Field("a", 4), Field(TAIL_FIELD, 4)), width=16)
    with pytest.raises(ValueError, match=r"Clash already has a field named '_tail'; rename it"):
        struct_layout(clash)
