"""Run a sweep: every design point evaluated once, cached, resumable, on any executor.

:func:`run_sweep` looks every point up in the :class:`~tessera.explore.cache.ResultCache`,
sends the missing ones to :func:`~tessera.explore.executors.run_tasks` and stores each record
as it arrives (so an interrupted sweep resumes where it stopped), then marks the Pareto front.
:func:`check_rtl` spot-checks points on the RTL: the same rows through
``tessera.connect("sim", config=...)`` must give the emulator's outputs bit for bit and the same
performance counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .cache import ResultCache, point_key
from .evaluate import BUILD_FAILED, BUILD_OK, evaluate_point
from .executors import run_tasks
from .pareto import mark_front

__all__ = ["SweepResult", "run_sweep", "check_points", "check_rtl", "choose_rtl_points",
           "EXACT_COUNTERS", "CYCLES_TOLERANCE"]


@dataclass
class SweepResult:
    """The records of a sweep and how they were obtained.

    Attributes
    ----------
    records : list of dict
        One record per design point, in grid order, with ``"pareto"`` set.
    evaluated : int
        Points evaluated by this run.
    cached : int
        Points taken from the cache.
    elapsed_s : float
        Wall time of the run.
    info : dict
        Model, data and options of the sweep (for reports).
    """

    records: list
    evaluated: int
    cached: int
    elapsed_s: float
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the sweep as a JSON-compatible dict."""
        return {"info": self.info, "evaluated": self.evaluated, "cached": self.cached,
                "elapsed_s": self.elapsed_s, "points": self.records}


def _evaluate_task(task, shared):
    return evaluate_point(task["point"], shared, task["cache_root"], mode=task["mode"],
                          batch=task["batch"], seed=task["seed"], build=task["build"])


def check_points(points, mode):
    """Raise ``ValueError`` if a point's configuration does not build requant ``mode``."""
    for point in points:
        config = point.config()
        if not config.supports(mode):
            raise ValueError(f"{point.label}: the board's configuration builds requant mode(s) "
                             f"{', '.join(config.requant_modes)} only, not {mode!r}; use --mode "
                             f"{config.requant_modes[0]} or another board")


def run_sweep(points, workload, cache_dir, *, mode="onnx", batch=64, seed=1, build=True,
              workers=None, scheduler=None, progress=None):
    """Evaluate ``points`` on ``workload``, reusing and filling the cache in ``cache_dir``.

    Parameters
    ----------
    points : list of DesignPoint
    workload : tessera.explore.sources.Workload
    cache_dir : path
    mode, batch, seed, build
        See :func:`tessera.explore.evaluate.evaluate_point`.
    workers, scheduler
        See :func:`tessera.explore.executors.run_tasks`.
    progress : callable, optional
        Called as ``progress(record, done, total, cached)`` after each point (cached ones
        included). It may raise (e.g. ``KeyboardInterrupt``) to stop the sweep; the points
        finished so far stay cached.
    """
    start = time.monotonic()
    check_points(points, mode)
    cache = ResultCache(cache_dir)
    keys = [point_key(p, p.config().hash_hex, workload.model_hash, workload.data_hash,
                      mode=mode, batch=batch, seed=seed) for p in points]
    records = [cache.get(key) for key in keys]
    # A cached record with a build answers an emulator-only sweep too, but not the reverse; a
    # build that failed (not "does not fit": a tool error) is tried again. A CNN point is
    # never built (#15), so its emulator record answers both.
    missing = [i for i, r in enumerate(records)
               if r is None or (build and r["status"] in (None, BUILD_FAILED)
                                and not r["point"].get("cnn"))]
    cached = len(points) - len(missing)
    done = 0
    if progress:
        pending = set(missing)
        for i, record in enumerate(records):
            if i not in pending:
                done += 1
                progress(record, done, len(points), True)
    tasks = [{"point": points[i].to_dict(), "cache_root": str(cache.root), "mode": mode,
              "batch": batch, "seed": seed, "build": build} for i in missing]
    for task_index, record in run_tasks(_evaluate_task, tasks, workload, workers=workers,
                                        scheduler=scheduler):
        index = missing[task_index]
        cache.put(keys[index], record)
        records[index] = {**record, "key": keys[index]}
        done += 1
        if progress:
            progress(records[index], done, len(points), False)
    mark_front(records)
    info = {"model": workload.name, "model_hash": workload.model_hash,
            "data_hash": workload.data_hash,
            "test_rows": 0 if workload.x_test is None else int(len(workload.x_test)),
            "labelled": workload.y_test is not None,
            "calibration_rows": 0 if workload.x_calibration is None
            else int(len(workload.x_calibration)),
            "quantized": workload.quantized is not None,
            "float_accuracy": workload.float_accuracy(), "mode": mode, "batch": batch,
            "seed": seed, "cache": str(cache.root)}
    return SweepResult(records=records, evaluated=len(missing), cached=cached,
                       elapsed_s=round(time.monotonic() - start, 1), info=info)


def choose_rtl_points(records, count=2):
    """Return the indices of up to ``count`` records to check on the RTL.

    The smallest and the largest array that fit (or, without builds, of all points), so the
    check covers both ends of the cycle model.
    """
    candidates = [i for i, r in enumerate(records) if r["status"] in (None, BUILD_OK)]
    candidates.sort(key=lambda i: (records[i]["config"]["rows"] * records[i]["config"]["cols"],
                                   records[i]["label"]))
    if len(candidates) <= count:
        return candidates
    picks = [candidates[0], candidates[-1]] + candidates[1:-1]
    return sorted(picks[:count])


#: Counters the RTL must reproduce exactly (work done and bytes moved).
EXACT_COUNTERS = ("compute_cycles", "macs", "stall_cycles", "rx_bytes", "tx_bytes")

#: Largest relative difference accepted between the RTL's and the model's total ``cycles``:
#: the simulation bridge runs the clock for a few cycles while a frame is on its way, which the
#: model (an idealised link) does not count (measured: +1.9 % to +2.5 % on the digits MLP).
CYCLES_TOLERANCE = 0.05


def check_rtl(record, workload, *, rows=8, simulator=None):
    """Run ``rows`` test rows on the emulator and on the RTL of ``record``'s configuration.

    Returns a dict: ``outputs_identical`` (bit for bit), ``counters_identical`` (every counter
    of :data:`EXACT_COUNTERS`), ``cycles_rel_diff`` (RTL vs model), ``ok`` (all of it, with the
    total cycles within :data:`CYCLES_TOLERANCE`), both counter sets and the RTL wall time.
    """
    import tessera
    from tessera.spec import AcceleratorConfig

    from .evaluate import quantize_for_width
    if record["point"].get("cnn"):
        raise ValueError(f"{record['label']}: no RTL implements the CNN features yet (#15); "
                         "drop --check-rtl for a CNN")
    config = AcceleratorConfig.from_dict(record["config"])
    if workload.quantized is not None:
        qmodel = workload.quantized
        x_q = workload.x_test[:rows] if workload.x_test is not None else \
            qmodel.quantize_input(np.zeros((rows, qmodel.in_features), np.float32))
    else:
        qmodel = quantize_for_width(workload, record["point"]["bits"], record["mode"])
        x_q = qmodel.quantize_input(workload.x_test[:rows])
    results = {}
    for name, target in (("emu", "emu"), ("rtl", f"sim:{simulator}" if simulator else "sim")):
        start = time.monotonic()
        with tessera.connect(target, config=config) as dev:
            dev.run(qmodel, x_q[:1], raw=True)          # setup frames, as in the sweep
            dev.clear_counters()
            out = dev.run(qmodel, x_q, raw=True)
            counters = dev.counters()
        results[name] = (out, counters, time.monotonic() - start)
    (emu_out, emu_counters, _), (rtl_out, rtl_counters, rtl_s) = results["emu"], results["rtl"]
    outputs_identical = bool(np.array_equal(emu_out, rtl_out))
    counters_identical = all(emu_counters[k] == rtl_counters[k] for k in EXACT_COUNTERS)
    rel = (rtl_counters["cycles"] - emu_counters["cycles"]) / max(emu_counters["cycles"], 1)
    return {"rows": int(len(x_q)), "target": "sim" + (f":{simulator}" if simulator else ""),
            "outputs_identical": outputs_identical, "counters_identical": counters_identical,
            "cycles_rel_diff": rel,
            "ok": outputs_identical and counters_identical and abs(rel) <= CYCLES_TOLERANCE,
            "emu_counters": emu_counters, "rtl_counters": rtl_counters,
            "rtl_wall_s": round(rtl_s, 1)}
