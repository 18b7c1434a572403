"""AcceleratorConfig: validation messages, derived values, JSON round trip, stable hash."""

import json

import pytest

from tessera.spec import AcceleratorConfig
from tessera.spec.isa import Buffer, INSN_BYTES


def test_defaults_and_derived_values():
    c = AcceleratorConfig()
    assert (c.rows, c.cols) == (8, 8)
    assert c.peak_macs_per_cycle == 64
    assert c.act_entry_bytes == 8 and c.weight_entry_bytes == 8 and c.param_entry_bytes == 9
    assert c.entry_bytes(Buffer.LUT) == 1
    assert c.depth(Buffer.WGT) == c.weight_depth
    assert c.max_load_entries(Buffer.ACT) == (c.max_payload - INSN_BYTES) // 8
    assert c.max_store_entries == c.max_payload // 8


def test_json_round_trip_and_hash_stability():
    c = AcceleratorConfig(rows=2, cols=4, requant_modes=("tflite",), act_depth=64)
    again = AcceleratorConfig.from_json(c.to_json())
    assert again == c and again.hash == c.hash
    # The hash is a pure function of the canonical JSON: pin one value so that an accidental
    # change to serialisation (which would orphan every built bitstream) is caught.
    assert AcceleratorConfig().hash_hex == "04427f543566ce47"
    assert AcceleratorConfig(rows=4).hash != AcceleratorConfig().hash


def test_mode_order_is_canonical():
    a = AcceleratorConfig(requant_modes=("tflite", "onnx"))
    b = AcceleratorConfig(requant_modes=["onnx", "tflite"])
    assert a == b and a.hash == b.hash and a.requant_modes == ("onnx", "tflite")


@pytest.mark.parametrize("changes, message", [
    ({"rows": 0}, "Row count must be an integer from 1 to 64, not 0"),
    ({"cols": "4"}, "Column count must be an integer from 1 to 64, not '4'"),
    ({"rows": True}, "Row count must be an integer from 1 to 64, not True"),
    ({"input_bits": 12}, "input_bits must be one of (4, 8, 16), not 12"),
    ({"weight_bits": True}, "weight_bits must be one of (4, 8, 16), not True"),
    ({"acc_bits": 40}, "acc_bits must be one of (32, 48), not 40"),
    ({"input_bits": 16, "weight_bits": 16, "acc_bits": 32},
     "acc_bits=32 holds only 2 worst-case 16x16-bit products; use acc_bits=48 (or leave "
     "acc_bits unset to pick it automatically)"),
    ({"input_bits": 4, "lut": True}, "lut=True needs 8-bit activations (the table has 256 "
                                     "entries), not input_bits=4; pass lut=False"),
    ({"input_bits": 16, "weight_bits": 16, "requant_modes": ("onnx", "tflite")},
     "Requant mode 'tflite' needs acc_bits=32 (its fixed-point multiply takes int32 "
     "accumulators), not 48; use requant_modes=('onnx',) or narrower operands"),
    ({"act_depth": 70000}, "Activation buffer depth must be an integer from 1 to 65536, "
                           "not 70000"),
    ({"requant_modes": ("float",)}, "Requant modes must be a non-empty subset of "
                                    "('onnx', 'tflite'), not ('float',)"),
    ({"requant_modes": ()}, "Requant modes must be a non-empty subset of ('onnx', 'tflite'), "
                            "not ()"),
    ({"max_payload": 10}, "Maximum frame payload must be an integer from 64 to 65535, not 10"),
    ({"lut": 1}, "lut must be True or False, not 1"),
])
def test_validation_messages(changes, message):
    with pytest.raises(ValueError) as info:
        AcceleratorConfig(**changes)
    assert str(info.value) == message


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"Unknown configuration field\(s\) row; known fields"):
        AcceleratorConfig.from_dict({"row": 4})


def test_save_writes_what_load_and_the_cli_read(tmp_path):
    c = AcceleratorConfig(rows=4, cols=2, lut=False, act_depth=512)
    c.save(tmp_path / "cfg.json")
    assert (tmp_path / "cfg.json").read_text() == c.to_json() + "\n"
    assert AcceleratorConfig.load(tmp_path / "cfg.json") == c


def test_load_reports_bad_json(tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text("{rows: 4")
    with pytest.raises(ValueError, match="cfg.json: not valid JSON"):
        AcceleratorConfig.load(p)
    p.write_text(json.dumps({"rows": 4, "cols": 2}))
    assert AcceleratorConfig.load(p) == AcceleratorConfig(rows=4, cols=2)


def test_frozen():
    c = AcceleratorConfig()
    with pytest.raises(AttributeError):
        c.rows = 4


def test_width_dependent_fields_are_derived():
    c = AcceleratorConfig()
    assert (c.acc_bits, c.lut, c.requant_modes, c.output_bits) == (32, True, ("onnx", "tflite"), 8)
    # Resolved values are what is serialised: an int8 config hashes as before (pinned above).
    assert AcceleratorConfig(acc_bits=32, lut=True,
                             requant_modes=("onnx", "tflite")).hash_hex == "04427f543566ce47"
    assert AcceleratorConfig.from_dict({"rows": 2}) == AcceleratorConfig(rows=2)
    base = AcceleratorConfig(rows=2, cols=4, requant_modes=("tflite",), lut=False)
    assert base.with_widths(8) == base and base.with_widths(8, 8) == base
    # A mode the new accumulator width cannot build is dropped; if none is left, the widths'
    # own modes are taken.
    assert base.with_widths(16) == base.replace(input_bits=16, weight_bits=16, acc_bits=48,
                                                requant_modes=("onnx",))
    assert base.with_widths(4, 8).requant_modes == ("tflite",)


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_operand_packing(bits):
    from tessera.spec import operand_range, pack_operands, unpack_operands
    lo, hi = operand_range(bits)
    values = [lo, hi, 0, -1, 1, lo + 1, hi - 1]
    data = pack_operands(values, bits)
    assert len(data) == (len(values) * bits + 7) // 8
    assert unpack_operands(data, len(values), bits) == values
    with pytest.raises(ValueError, match=rf"Operand 1 = {hi + 1} does not fit {bits} bits"):
        pack_operands([0, hi + 1], bits)


def test_nibble_order_is_lsb_first():
    from tessera.spec import pack_operands
    assert pack_operands([1, -2, 3], 4) == bytes([0xE1, 0x03])
    assert pack_operands([0x1234, -2], 16) == bytes([0x34, 0x12, 0xFE, 0xFF])


def test_every_width_mix_builds_with_its_derived_fields():
    for input_bits in (4, 8, 16):
        for weight_bits in (4, 8, 16):
            config = AcceleratorConfig(input_bits=input_bits, weight_bits=weight_bits)
            wide = input_bits + weight_bits > 24
            assert config.acc_bits == (48 if wide else 32)
            assert config.requant_modes == (("onnx",) if wide else ("onnx", "tflite"))
            assert config.lut == (input_bits == 8)
    assert AcceleratorConfig(input_bits=4, weight_bits=8).act_entry_bytes == 4
