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
    ({"input_bits": 4}, "input_bits=4 is not implemented by the gateware yet (the device stack "
                        "runs 8-bit operands); tessera.quantize(bits=4) and tessera.numerics "
                        "model 4-bit layers on the host"),
    ({"input_bits": 16, "weight_bits": 16}, "input_bits=16 is not implemented by the gateware "
                                            "yet (the device stack runs 8-bit operands); "
                                            "tessera.quantize(bits=16) and tessera.numerics "
                                            "model 16-bit layers on the host"),
    ({"weight_bits": 4}, "weight_bits=4 is not implemented by the gateware yet (the device "
                         "stack runs 8-bit operands); tessera.quantize(bits=4) and "
                         "tessera.numerics model 4-bit layers on the host"),
    ({"acc_bits": 48}, "acc_bits=48 is not implemented by the gateware yet (the device stack "
                       "runs 32-bit accumulators)"),
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
    with pytest.raises(ValueError, match="input_bits=16 is not implemented by the gateware"):
        base.with_widths(16)


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


def test_device_gate_reads_the_widths_when_called(monkeypatch):
    """``device_supports`` reads DEVICE_*_BITS at call time: tests of the host half of a width
    widen the tuples with monkeypatch (tests/test_compiler_widths.py)."""
    import tessera.spec.config as spec_config
    from tessera.spec import device_supports
    assert device_supports(8) and not device_supports(4)
    assert device_supports(32, accumulator=True) and not device_supports(48, accumulator=True)
    monkeypatch.setattr(spec_config, "DEVICE_OPERAND_BITS", (4, 8))
    assert device_supports(4) and not device_supports(16)
    assert AcceleratorConfig(input_bits=4, weight_bits=8).act_entry_bytes == 4
