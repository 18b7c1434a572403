"""The Pareto front of a sweep: the points no other point beats on every objective.

Point *a* dominates point *b* when *a* is at least as good as *b* on every objective and
strictly better on one. The front is the set of points that no point dominates. Objectives are
``(field, sense)`` pairs, ``sense`` being ``"max"`` or ``"min"``; the default is accuracy (max),
latency in µs at the achieved Fmax (min) and LUTs (min). Points without a value for an
objective take no part, and neither do points whose build status is "does not fit" or
"failed" (they cannot be realised). A sweep without builds uses latency in µs at each board's
target clock and the array's MACs per cycle instead of LUTs (latency in cycles for records
without µs), and a sweep without labelled data has no accuracy objective.
"""

from __future__ import annotations

__all__ = ["OBJECTIVES", "TARGET_CLOCK_OBJECTIVES", "EMULATOR_OBJECTIVES", "dominates",
           "pareto_front", "mark_front", "objectives_for"]

#: Default objectives of a sweep with builds.
OBJECTIVES = (("accuracy", "max"), ("latency_us", "min"), ("lut4", "min"))

#: Objectives of a sweep without builds: latency in µs at each board's target clock, and the
#: array size (its multipliers) in place of the LUTs.
TARGET_CLOCK_OBJECTIVES = (("accuracy", "max"), ("latency_us", "min"),
                           ("peak_macs_per_cycle", "min"))

#: Objectives of records with cycles only (no clock).
EMULATOR_OBJECTIVES = (("accuracy", "max"), ("latency_cycles", "min"))

_SENSES = ("max", "min")


def _check_objectives(objectives):
    if not objectives:
        raise ValueError("Give at least one objective, e.g. [('accuracy', 'max')]")
    for entry in objectives:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and entry[1] in _SENSES):
            raise ValueError(f"Each objective must be a (field, 'max' | 'min') pair, not "
                             f"{entry!r}")


#: Build statuses of points that cannot be realised (never on the front).
_UNREALISABLE = ("does not fit", "failed")


def _vector(record, objectives):
    if record.get("status") in _UNREALISABLE:
        return None
    values = []
    for name, sense in objectives:
        value = record.get(name)
        if value is None:
            return None
        values.append(float(value) if sense == "max" else -float(value))
    return values


def dominates(a, b, objectives=OBJECTIVES) -> bool:
    """Return whether record ``a`` dominates record ``b`` (both must have every objective)."""
    _check_objectives(objectives)
    va, vb = _vector(a, objectives), _vector(b, objectives)
    if va is None or vb is None:
        raise ValueError("Both records need a value for every objective "
                         f"({', '.join(n for n, _ in objectives)})")
    return all(x >= y for x, y in zip(va, vb)) and any(x > y for x, y in zip(va, vb))


def pareto_front(records, objectives=OBJECTIVES):
    """Return the indices of the non-dominated records, in input order.

    Records lacking a value for an objective are left out. Records with identical objective
    values are all on the front if one of them is.
    """
    _check_objectives(objectives)
    vectors = [(_vector(r, objectives), i) for i, r in enumerate(records)]
    vectors = [(v, i) for v, i in vectors if v is not None]
    front = []
    for v, i in vectors:
        beaten = any(all(x >= y for x, y in zip(w, v)) and any(x > y for x, y in zip(w, v))
                     for w, _ in vectors)
        if not beaten:
            front.append(i)
    return front


def objectives_for(records):
    """Return the objectives ``records`` can be ranked on.

    :data:`OBJECTIVES` if any record has a build (LUTs), else :data:`TARGET_CLOCK_OBJECTIVES`
    if any has a latency in µs, else :data:`EMULATOR_OBJECTIVES`; without any accuracy (no
    labelled data) the accuracy objective is dropped.
    """
    if any(r.get("lut4") is not None for r in records):
        chosen = OBJECTIVES
    elif any(r.get("latency_us") is not None for r in records):
        chosen = TARGET_CLOCK_OBJECTIVES
    else:
        chosen = EMULATOR_OBJECTIVES
    if not any(r.get("accuracy") is not None for r in records):
        chosen = tuple(o for o in chosen if o[0] != "accuracy")
    return chosen


def mark_front(records, objectives=None):
    """Set ``record["pareto"]`` on every record; return the front's indices."""
    objectives = objectives or objectives_for(records)
    front = set(pareto_front(records, objectives))
    for i, record in enumerate(records):
        record["pareto"] = i in front
    return sorted(front)
