"""AcceleratorConfig.requant_cycles: validation, hash stability, the drain's cycle model."""

import pytest

from tessera import AcceleratorConfig
from tessera.runtime.cycles import CycleModel
from tessera.spec import timing


def test_default_is_omitted_from_json_and_hash():
    # A configuration that does not use the field serialises and hashes exactly as before the
    # field existed (the pinned hash of tests/test_spec_config.py).
    base = AcceleratorConfig()
    assert "requant_cycles" not in base.to_dict()
    assert base.hash_hex == "04427f543566ce47"
    assert AcceleratorConfig.from_json(base.to_json()).requant_cycles == 1


def test_non_default_is_serialised_and_changes_the_hash():
    c = AcceleratorConfig(requant_modes=("onnx",), requant_cycles=8)
    assert c.to_dict()["requant_cycles"] == 8
    again = AcceleratorConfig.from_json(c.to_json())
    assert again == c and again.hash == c.hash
    assert c.hash != AcceleratorConfig(requant_modes=("onnx",)).hash


@pytest.mark.parametrize("value", [0, 25, 2.5, True, "3"])
def test_rejects_bad_values(value):
    with pytest.raises(ValueError, match="Requant cycles per element must be an integer from "
                                         "1 to 24"):
        AcceleratorConfig(requant_modes=("onnx",), requant_cycles=value)


def test_iterative_multiplier_is_onnx_only():
    with pytest.raises(ValueError, match=r"requant_cycles=3 .* mode 'onnx' only; use "
                                         r"requant_modes=\('onnx',\) or requant_cycles=1"):
        AcceleratorConfig(requant_cycles=3)


def test_iterative_multiplier_builds_one_mode():
    # cnn configurations have an iterative tflite product too, but one mode at a time (the two
    # products hold the PostProcessor in different stages: hw/postproc.py)
    assert AcceleratorConfig(cnn=True, requant_modes=("tflite",), requant_cycles=4)
    with pytest.raises(ValueError, match=r"^requant_cycles=4 \(an iterative requant multiplier\) "
                                         r"builds one requant mode, not \('onnx', 'tflite'\); "
                                         r"pass requant_modes=\('onnx',\) or \('tflite',\)$"):
        AcceleratorConfig(cnn=True, requant_cycles=4)


@pytest.mark.parametrize("cycles", [1, 3, 24])
def test_drain_takes_elements_times_cycles_plus_overhead(cycles):
    model = CycleModel(requant_cycles=cycles)
    model.gemm(k=1, m_rows=2, n_cols=3, drain=True)
    handoff = 1 + timing.GEMM_OVERHEAD_CYCLES
    assert model.drain_free_at == handoff + 2 * 3 * cycles + timing.DRAIN_OVERHEAD_CYCLES
    # A second draining GEMM that finishes early stalls until that drain is over.
    model.gemm(k=1, m_rows=2, n_cols=3, drain=True)
    drain = 2 * 3 * cycles + timing.DRAIN_OVERHEAD_CYCLES
    stall = max(0, drain - (1 + timing.GEMM_OVERHEAD_CYCLES))
    assert model.counters()["stall_cycles"] == stall


def test_with_widths_keeps_the_iterative_multiplier():
    c = AcceleratorConfig(requant_modes=("onnx",), requant_cycles=8)
    assert c.with_widths(8) == c
