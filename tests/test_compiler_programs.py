"""Compiled programs, decoded with the spec decoder: framing, addressing, tiling, hazards."""

import numpy as np
import pytest

from tessera.compiler import compile_gemm, compile_model, disassemble
from tessera.spec import AcceleratorConfig, isa

from compiler_helpers import check_structure, hazards, make_model

TINY = dict(rows=2, cols=3, act_depth=64, weight_depth=16, param_depth=8, max_payload=64)

CONFIGS = {
    "tiny": AcceleratorConfig(**TINY),
    "tiny-roomy-wgt": AcceleratorConfig(**{**TINY, "weight_depth": 512, "param_depth": 64}),
    "tiny-param2": AcceleratorConfig(**{**TINY, "param_depth": 2}),
    "4x2": AcceleratorConfig(rows=4, cols=2, act_depth=256, weight_depth=64, param_depth=16,
                             max_payload=96),
    "default": AcceleratorConfig(),
}


def _gemm(rng, k, n, config, **kw):
    w = rng.integers(-127, 128, (k, n), dtype=np.int8)
    b = rng.integers(-5000, 5000, n, dtype=np.int32)
    return compile_gemm(w, b, np.float32(0.003).view(np.uint32), 0, config, **kw)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("m", [1, 5, 37])
def test_structure_and_hazards(name, m):
    config = CONFIGS[name]
    rng = np.random.default_rng(m)
    model = make_model(rng, [20, 13, 7, 5], ["relu", "tanh", "none"])
    compiled = compile_model(model, config)
    check_structure(compiled.setup_frames, config, stores={})
    x = rng.integers(-128, 128, (m, 20), dtype=np.int8)
    program = compiled.program(x)
    insns = check_structure(program.frames, config, program.stores)
    assert hazards(insns) == []
    assert program.n_instructions == len(insns) == compiled.instruction_count(m)
    assert program.out_shape == (m, 5)
    assert program.macs == m * (20 * 13 + 13 * 7 + 7 * 5)
    # Useful MACs of the GEMMs equal the program's MACs: padding rows/columns are not issued.
    assert sum(g.m_rows * g.n_cols * g.k for g in insns if isinstance(g, isa.Gemm)) == \
        program.macs
    # Every output element is stored exactly once.
    covered = np.zeros(program.out_shape, dtype=int)
    for t in program.stores.values():
        covered[t.m_start:t.m_start + t.m_rows, t.n_start:t.n_start + t.n_count] += 1
    np.testing.assert_array_equal(covered, 1)
    link = compiled.link_bytes(m)
    assert link["frames"] == len(program.frames)
    assert link["request"] == program.request_bytes + 8 * len(program.frames)


@pytest.mark.parametrize("name", ["tiny", "4x2"])
def test_every_sync_is_needed(name):
    """Minimality: dropping any single SYNC leaves a hazard."""
    config = CONFIGS[name]
    rng = np.random.default_rng(3)
    model = make_model(rng, [20, 13, 7, 5], ["relu", "tanh", "sigmoid"])
    program = compile_model(model, config).program(
        rng.integers(-128, 128, (9, 20), dtype=np.int8))
    insns = check_structure(program.frames, config, program.stores)
    syncs = [i for i, insn in enumerate(insns) if isinstance(insn, isa.Sync)]
    assert syncs
    for i in syncs:
        assert hazards(insns[:i] + insns[i + 1:]), f"SYNC at instruction {i} is not needed"


def test_k_split_when_a_tile_does_not_fit_the_weight_buffer():
    config = CONFIGS["tiny"]  # weight_depth 16: K = 40 is split into 3 balanced parts of <= 8
    compiled = _gemm(np.random.default_rng(1), 40, 4, config)
    assert not compiled.weights_resident
    assert compiled.allocation.layers[0].weights.strategy == "split"
    assert compiled.allocation.layers[0].weights.k_parts == tuple(
        (i * 8, 8) for i in range(5))
    program = compiled.program(np.zeros((3, 40), dtype=np.int8))
    gemms = [g for g in check_structure(program.frames, config) if isinstance(g, isa.Gemm)]
    # 2 row tiles x 2 column tiles x 5 K parts; clear on the first part, drain on the last.
    assert len(gemms) == 20
    flags = [(g.clear, g.drain) for g in gemms[:5]]
    assert flags == [(True, False)] + [(False, False)] * 3 + [(False, True)]
    assert all(g.k == 8 for g in gemms)


def test_whole_k_per_gemm_when_it_fits():
    config = AcceleratorConfig()
    compiled = _gemm(np.random.default_rng(2), 256, 256, config)
    program = compiled.program(np.zeros((256, 256), dtype=np.int8))
    gemms = [g for g in check_structure(program.frames, config) if isinstance(g, isa.Gemm)]
    assert {g.k for g in gemms} == {256}
    assert all(g.clear and g.drain for g in gemms)
    assert len(gemms) == 32 * 32
    # 32 column tiles of 256 entries, WGT 2048: 7 stay resident beside a ring of one 256-entry
    # slot, the other 25 are streamed, each once per chunk of 32 rows.
    plan = compiled.allocation.layers[0].weights
    assert (plan.strategy, plan.resident_tiles, plan.slots) == ("single", 7, (7 * 256,))
    assert compiled.rows_per_chunk == 32
    insns = check_structure(program.frames, config)
    wgt = [i for i in insns if isinstance(i, isa.Load) and i.buffer == isa.Buffer.WGT]
    assert sum(i.count for i in wgt) == 25 * 256 * 8 == compiled.streamed_weight_entries * 8
    assert {i.addr for i in wgt} <= set(range(7 * 256, 2048))


def test_resident_weights_go_in_setup_frames():
    config = CONFIGS["tiny-roomy-wgt"]
    compiled = _gemm(np.random.default_rng(4), 30, 7, config)
    assert compiled.weights_resident
    setup = check_structure(compiled.setup_frames, config, stores={})
    wgt = [i for i in setup if isinstance(i, isa.Load) and i.buffer == isa.Buffer.WGT]
    assert sum(i.count for i in wgt) == 30 * 3  # 3 column tiles of K entries
    program = compiled.program(np.zeros((4, 30), dtype=np.int8))
    loads = {i.buffer for i in check_structure(program.frames, config)
             if isinstance(i, isa.Load)}
    assert loads == {isa.Buffer.ACT}


def test_weight_payload_layout():
    """WGT entry = cols bytes of one k; zero padding beyond N; column tiles of cols."""
    config = CONFIGS["tiny-roomy-wgt"]
    w = np.arange(-60, 60, dtype=np.int8).reshape(24, 5)
    compiled = compile_gemm(w, np.zeros(5, np.int32), 1 << 30, 0, config, mode="tflite",
                            lo=-128, hi=127)
    data = b"".join(i.payload for i in check_structure(compiled.setup_frames, config)
                    if isinstance(i, isa.Load) and i.buffer == isa.Buffer.WGT)
    entries = np.frombuffer(data, dtype=np.int8).reshape(-1, 3)
    np.testing.assert_array_equal(entries[:24], w[:, :3])
    np.testing.assert_array_equal(entries[24:, :2], w[:, 3:])
    np.testing.assert_array_equal(entries[24:, 2], 0)


def test_param_payload_matches_spec_layout():
    config = CONFIGS["tiny-roomy-wgt"]
    w = np.ones((4, 2), dtype=np.int8)
    bias = np.array([-7, 123456], dtype=np.int32)
    compiled = compile_gemm(w, bias, [1 << 30, (1 << 31) - 1], [-3, 5], config, mode="tflite")
    data = b"".join(i.payload for i in check_structure(compiled.setup_frames, config)
                    if isinstance(i, isa.Load) and i.buffer == isa.Buffer.PARAM)
    expected = isa.PARAM_LAYOUT.to_bytes(bias=-7, multiplier=1 << 30, shift=-3) + \
        isa.PARAM_LAYOUT.to_bytes(bias=123456, multiplier=(1 << 31) - 1, shift=5)
    assert data == expected


def test_input_chunks_and_row_padding():
    config = CONFIGS["tiny"]
    compiled = _gemm(np.random.default_rng(5), 10, 3, config)
    per_chunk = compiled.rows_per_chunk
    assert per_chunk == 2 * (64 // 13)
    m = 2 * per_chunk + 3
    x = np.arange(m * 10, dtype=np.int64).reshape(m, 10).astype(np.int8)
    program = compiled.program(x)
    insns = check_structure(program.frames, config, program.stores)
    act = [i for i in insns if isinstance(i, isa.Load) and i.buffer == isa.Buffer.ACT]
    data = np.frombuffer(b"".join(i.payload for i in act), dtype=np.int8).reshape(-1, 10, 2)
    # tile t, entry k, byte r = x[t*rows + r, k]; the padding row of the last tile is zero
    tiles = data.transpose(0, 2, 1).reshape(-1, 10)
    np.testing.assert_array_equal(tiles[:m], x)
    np.testing.assert_array_equal(tiles[m:], 0)
    assert max(t.m_start + t.m_rows for t in program.stores.values()) == m


def test_param_tiles_narrower_than_array_when_param_buffer_is_tiny():
    config = CONFIGS["tiny-param2"]
    compiled = _gemm(np.random.default_rng(6), 12, 5, config)
    assert compiled.allocation.tile_n == 2
    program = compiled.program(np.zeros((2, 12), dtype=np.int8))
    gemms = [g for g in check_structure(program.frames, config) if isinstance(g, isa.Gemm)]
    assert [g.n_cols for g in gemms] == [2, 2, 1]


def test_disassembly_lists_every_instruction():
    config = CONFIGS["tiny"]
    compiled = _gemm(np.random.default_rng(7), 6, 2, config)
    program = compiled.program(np.zeros((1, 6), dtype=np.int8))
    text = disassemble(program, config)
    assert text.splitlines()[0].startswith("frame 0: ")
    assert "GEMM  a=0 w=" in text and "STORE addr=" in text
    assert text.count("\n  ") == program.n_instructions
