"""Pareto front of hand-made sweep records: dominance, ties, missing figures, objectives."""

import pytest

from tessera.explore import pareto
from tessera.explore.pareto import (EMULATOR_OBJECTIVES, OBJECTIVES, dominates, mark_front,
                                    objectives_for, pareto_front)


def rec(label, accuracy, latency_us, lut4, **extra):
    return {"label": label, "accuracy": accuracy, "latency_us": latency_us, "lut4": lut4,
            **extra}


RECORDS = [
    rec("a", 0.97, 10.0, 3000),   # front: most accurate among the cheap ones
    rec("b", 0.97, 12.0, 3000),   # dominated by a (slower, same otherwise)
    rec("c", 0.95, 5.0, 4000),    # front: fastest
    rec("d", 0.95, 5.0, 4500),    # dominated by c (more LUTs)
    rec("e", 0.90, 20.0, 1000),   # front: smallest
    rec("f", 0.98, 30.0, 9000),   # front: most accurate
    rec("g", 0.90, 20.0, 1000),   # identical to e: both on the front
    rec("h", 0.99, None, None, status="does not fit"),   # no figures: not ranked
]


def test_front_of_hand_made_points():
    assert pareto_front(RECORDS) == [0, 2, 4, 5, 6]


def test_dominance_is_strict_on_one_objective():
    assert dominates(RECORDS[0], RECORDS[1])
    assert not dominates(RECORDS[1], RECORDS[0])
    assert not dominates(RECORDS[4], RECORDS[6]) and not dominates(RECORDS[6], RECORDS[4])
    assert not dominates(RECORDS[0], RECORDS[2]) and not dominates(RECORDS[2], RECORDS[0])


def test_front_matches_brute_force_on_random_points():
    import numpy as np
    rng = np.random.default_rng(3)
    records = [rec(str(i), float(rng.integers(90, 100)) / 100, float(rng.integers(1, 20)),
                   int(rng.integers(1, 10)) * 500) for i in range(60)]
    front = set(pareto_front(records))
    for i, r in enumerate(records):
        beaten = any(dominates(o, r) for o in records)
        assert (i in front) == (not beaten), r
    # Every point off the front is dominated by a point on it.
    for i in set(range(60)) - front:
        assert any(dominates(records[j], records[i]) for j in front)


def test_mark_front_sets_flags_and_picks_objectives():
    records = [dict(r) for r in RECORDS]
    assert mark_front(records) == [0, 2, 4, 5, 6]
    assert [r["pareto"] for r in records] == [True, False, True, False, True, True, True, False]
    assert objectives_for(records) == OBJECTIVES
    emulated = [{"label": "x", "accuracy": 0.9, "latency_cycles": 100, "latency_us": None},
                {"label": "y", "accuracy": 0.9, "latency_cycles": 120, "latency_us": None}]
    assert objectives_for(emulated) == EMULATOR_OBJECTIVES
    assert mark_front(emulated) == [0]


def test_custom_objectives():
    records = [{"accuracy": 0.9, "lut4": 100}, {"accuracy": 0.95, "lut4": 200},
               {"accuracy": 0.95, "lut4": 300}]
    assert pareto_front(records, (("accuracy", "max"), ("lut4", "min"))) == [0, 1]
    assert pareto_front(records, (("lut4", "max"),)) == [2]


def test_bad_objectives_and_missing_values():
    with pytest.raises(ValueError, match=r"^Give at least one objective"):
        pareto_front(RECORDS, ())
    with pytest.raises(ValueError, match=r"^Each objective must be a \(field, 'max' \| 'min'\) "
                                         r"pair, not \('accuracy', 'up'\)$"):
        pareto_front(RECORDS, (("accuracy", "up"),))
    with pytest.raises(ValueError, match=r"^Both records need a value for every objective "
                                         r"\(accuracy, latency_us, lut4\)$"):
        dominates(RECORDS[0], RECORDS[7])


def test_all_names_resolve():
    import tessera.explore
    for module in (tessera.explore, pareto):
        for name in module.__all__:
            assert getattr(module, name) is not None, name


def test_points_without_a_bitstream_are_never_on_the_front():
    records = [{"accuracy": 0.99, "latency_cycles": 10, "status": "does not fit"},
               {"accuracy": 0.99, "latency_cycles": 10, "status": "failed"},
               {"accuracy": 0.90, "latency_cycles": 50, "status": "ok"},
               {"accuracy": 0.90, "latency_cycles": 60, "status": None}]
    assert pareto_front(records, EMULATOR_OBJECTIVES) == [2]


def test_wide_latency_and_lut_axes_are_logarithmic():
    from tessera.explore.plots import _log_if_wide
    scales = []
    _log_if_wide(scales.append, "latency_us", [10.0, 500.0])     # spans 50x: log
    _log_if_wide(scales.append, "lut4", [3300, 5900])            # spans 1.8x: linear
    _log_if_wide(scales.append, "accuracy", [0.01, 0.97])        # accuracy stays linear
    _log_if_wide(scales.append, "latency_us", [])                # nothing to plot
    assert scales == ["log"]
