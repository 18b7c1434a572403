"""Mixed weight residency of dense chains: the fewest WGT entries streamed, exact outputs.

:func:`tessera.compiler.alloc.streamed_tiles` is checked against a brute force over every
choice of streamed column tiles; compiled programs with resident, streamed and split layers side
by side pass the independent hazard checker (every ``SYNC`` needed) and equal ``predict`` on
``connect("emu")`` and on the RTL (``connect("sim")``, the small ``2x4`` build).
"""

import dataclasses
import itertools

import numpy as np
import pytest

import tessera
from tessera.compiler import compile_model
from tessera.compiler.alloc import streamed_tiles
from tessera.spec import AcceleratorConfig, isa

from compiler_helpers import check_structure, hazards, make_model
from sim_helpers import CONFIGS as SIM_CONFIGS, build

SIM_CONFIG = SIM_CONFIGS["2x4"]                 # rows 2, cols 4, WGT 64 entries
#: A split layer (K=70 > 64, a ring of 32 entries), two layers partly resident, one streamed.
MIXED = [70, 8, 12, 9, 5]
#: A whole layer and two of the next layer's four tiles streamed, the last layer resident.
PARTIAL = [12, 9, 16, 5]
#: Rows 2, cols 8, WGT 128: a split layer (K=130) between two resident layers (59 entries,
#: beside its ring of 64).
SPLIT_MIDDLE = AcceleratorConfig(rows=2, cols=8, act_depth=256, weight_depth=128,
                                 param_depth=32, max_payload=128)


def _brute_force(tiles, depth):
    """Return the fewest entries streamed over every choice of streamed tiles per layer."""
    best = None
    for counts in itertools.product(*(range(t + 1) for _, t in tiles)):
        if any(k > depth and c < t for (k, t), c in zip(tiles, counts)):
            continue                                  # a K > depth layer is never resident
        resident = sum(k * (t - c) for (k, t), c in zip(tiles, counts))
        ring = max([k if k <= depth else depth // 2 for (k, _), c in zip(tiles, counts) if c]
                   or [0])
        if resident + ring <= depth:
            cost = sum(k * c for (k, t), c in zip(tiles, counts) if k <= depth)
            best = cost if best is None else min(best, cost)
    return best


def _cost(tiles, counts):
    return sum(k * c for (k, _), c in zip(tiles, counts) if k <= 64)


@pytest.mark.parametrize("seed", range(40))
def test_streamed_tiles_is_the_minimum(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    tiles = [(int(rng.integers(1, 80 if seed % 4 == 0 else 40)), int(rng.integers(1, 5)))
             for _ in range(n)]
    counts = streamed_tiles(tiles, 64)
    assert all(0 <= c <= t for (_, t), c in zip(tiles, counts))
    resident = sum(k * (t - c) for (k, t), c in zip(tiles, counts))
    ring = max([k if k <= 64 else 32 for (k, _), c in zip(tiles, counts) if c] or [0])
    assert resident + ring <= 64
    assert _cost(tiles, counts) == _brute_force(tiles, 64), (tiles, counts)


def test_streamed_tiles_borders():
    assert streamed_tiles([(8, 8)], 64) == [0]                 # exactly full: all resident
    # One entry too many: streaming the 1-entry tile leaves no room for its own ring.
    assert streamed_tiles([(8, 8), (1, 1)], 64) == [1, 1]
    # A split layer needs a ring of half of WGT: 32 of the others' entries stay resident.
    assert streamed_tiles([(65, 2), (8, 8)], 64) == [2, 4]
    assert streamed_tiles([(65, 2), (8, 4)], 64) == [2, 0]
    assert streamed_tiles([(65, 2), (9, 7)], 64) == [2, 4]     # 27 resident: 3 tiles of 9
    assert streamed_tiles([(64, 3)], 64) == [3]                # one slot of 64: all streamed


def _plans(compiled):
    return [(la.weights.strategy, la.weights.resident_tiles, len(la.n_tiles))
            for la in compiled.allocation.layers]


def _check_program(compiled, config, x_q):
    program = compiled.program(x_q)
    insns = check_structure(program.frames, config, program.stores)
    assert hazards(insns, config.cnn) == []
    syncs = [i for i, insn in enumerate(insns) if isinstance(insn, isa.Sync)]
    for i in syncs:
        assert hazards(insns[:i] + insns[i + 1:], config.cnn), \
            f"SYNC at instruction {i} is not needed"
    setup = check_structure(compiled.setup_frames, config, stores={})
    resident = sum(i.count for i in setup
                   if isinstance(i, isa.Load) and i.buffer == isa.Buffer.WGT)
    streamed = [i for i in insns if isinstance(i, isa.Load) and i.buffer == isa.Buffer.WGT]
    ring = min((i.addr for i in streamed), default=resident)
    assert ring >= resident                     # streamed tiles never overwrite resident ones
    return sum(i.count for i in streamed)


CASES = {
    "mixed": (SIM_CONFIG, MIXED, [("split", 0, 2), ("double", 1, 3), ("double", 2, 3),
                                  ("double", 0, 2)]),
    "partial": (SIM_CONFIG, PARTIAL, [("single", 0, 3), ("single", 2, 4), ("resident", 2, 2)]),
    # ISA version 3 (single-port ACT/WGT): every streamed LOAD waits for the GEMMs before it.
    "mixed-cnn": (dataclasses.replace(SIM_CONFIG, cnn=True), MIXED,
                  [("split", 0, 2), ("double", 1, 3), ("double", 2, 3), ("double", 0, 2)]),
    "split-middle": (SPLIT_MIDDLE, [3, 130, 8, 5], [("resident", 17, 17), ("split", 0, 1),
                                                    ("resident", 1, 1)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_mixed_residency_bit_exact_on_the_emulator(name):
    config, sizes, plans = CASES[name]
    rng = np.random.default_rng(len(name))
    model = make_model(rng, sizes, ["relu", "tanh", "relu6", "none"][:len(sizes) - 1])
    compiled = compile_model(model, config)
    assert _plans(compiled) == plans
    assert not compiled.weights_resident
    x_q = rng.integers(-128, 128, (41, sizes[0]), dtype=np.int8)
    x_q[0], x_q[1] = -128, 127                                   # the extremes
    assert _check_program(compiled, config, x_q[:compiled.rows_per_chunk]) == \
        compiled.streamed_weight_entries
    with tessera.connect("emu", config=config) as dev:
        for m in (1, 2, 41):
            np.testing.assert_array_equal(dev.run(model, x_q[:m], raw=True),
                                          model.predict(x_q[:m], raw=True))


@pytest.mark.slow
def test_mixed_residency_on_the_rtl():
    """Split, streamed and resident layers side by side on the 2x4 RTL: outputs equal predict,
    counters equal the emulator's."""
    build("2x4", "verilator")
    rng = np.random.default_rng(5)
    model = make_model(rng, MIXED, ["relu", "tanh", "relu6", "none"])
    x_q = rng.integers(-128, 128, (9, MIXED[0]), dtype=np.int8)
    x_q[0], x_q[1] = -128, 127
    with tessera.connect("emu", config=SIM_CONFIG) as emu:
        emu.clear_counters()
        expected = emu.run(model, x_q, raw=True)
        counters = emu.counters()
    np.testing.assert_array_equal(expected, model.predict(x_q, raw=True))
    with tessera.connect("sim:verilator", config=SIM_CONFIG) as dev:
        dev.clear_counters()
        got = dev.run(model, x_q, raw=True)
        rtl = dev.counters()
    np.testing.assert_array_equal(got, expected)
    exact = ("compute_cycles", "macs", "stall_cycles", "rx_bytes", "tx_bytes")
    assert {n: rtl[n] for n in exact} == {n: counters[n] for n in exact}


def test_summary_and_report_name_the_streamed_tiles():
    model = make_model(np.random.default_rng(7), PARTIAL, ["relu", "tanh", "none"])
    compiled = compile_model(model, SIM_CONFIG)
    # Per chunk: 3 tiles of 12 entries and 2 of 9 streamed.
    assert compiled.streamed_weight_entries == compiled.report()["streamed_weight_entries"] == 54
    text = compiled.summary()
    assert "weights partly resident (54 entries streamed per chunk)" in text.splitlines()[0]
    assert "single, 2 of 4 column tiles streamed" in text
    (wgt,) = [line for line in text.splitlines() if line.startswith("WGT")]
    assert wgt.split(None, 3) == ["WGT", "62", "64",
                                  "4 of 9 column tiles resident, the others streamed (single)"]
    assert repr(compiled).endswith("weights partly resident>")
