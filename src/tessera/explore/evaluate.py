"""Evaluate one design point: accuracy and cycles on the emulator, resources and Fmax from a build.

:func:`evaluate_point` is what every worker runs (a local process or a Dask worker). It

1. quantizes the float model for the point's operand width (calibrated on the user's data);
2. runs the whole test set through ``tessera.connect("emu", config=...)`` — bit-exact with the
   RTL — and checks the outputs against the NumPy reference bit for bit; accuracy, cycles per
   inference (batches of ``batch`` rows, weights already loaded), latency (one row) and
   utilisation come from the device's performance counters (the emulator's cycle model);
3. builds the bitstream with :func:`tessera.hw.build.build_bitstream` (or reuses the cached
   build of the same board, configuration, clock and seed) and takes LUTs, flip-flops, DSPs,
   block RAMs and Fmax from its :class:`~tessera.hw.report.BuildReport`. A configuration the
   part cannot hold is recorded as ``"does not fit"`` with the reason; a tool failure as
   ``"failed"`` with the log's tail (not cached, so a rerun tries again);
4. turns cycles into time at the achieved Fmax (without a build: at the target clock, the
   board's): latency in µs and inferences per second.

A quantized model keeps its width and mode, and a graph (a CNN) runs on the board's CNN preset
with the point's shape, resident, its latency one inference with the input on the device: see
:mod:`tessera.explore.quantized`. CNN points are not built (of the CNN presets only
orangecrab-25f-cnn meets timing, #15): such a point's reason says so, and a shape with more MACs than the part has multipliers
is "does not fit" like one whose memories cannot hold the model.

The result is a JSON-compatible record (dict); see :data:`RECORD_FIELDS`.
"""

from __future__ import annotations

import json
import time

import numpy as np

from .cache import build_directory, write_json
from .grid import DesignPoint

__all__ = ["evaluate_point", "quantize_for_width", "emulate", "build_point", "RECORD_FIELDS",
           "NO_FIT", "BUILD_OK", "BUILD_FAILED", "NO_CNN_GATEWARE"]

#: Build status of a point whose bitstream was built.
BUILD_OK = "ok"
#: Build status of a point the FPGA cannot hold.
NO_FIT = "does not fit"
#: Build status of a point whose build failed for another reason.
BUILD_FAILED = "failed"

#: Top-level fields of a point record (the sweep adds ``key`` and ``pareto``, and
#: ``rtl_check`` for points checked on the RTL).
RECORD_FIELDS = (
    "point", "label", "config", "config_hash", "mode", "accuracy", "outputs_identical",
    "cycles_per_inference", "latency_cycles", "setup_cycles", "utilisation", "macs_per_inference",
    "counters", "status", "reason", "lut4", "ff", "dsp", "bram", "fmax_mhz", "target_mhz",
    "timing_met", "latency_us", "latency_clock_mhz", "throughput_ips", "peak_macs_per_cycle",
    "memory", "build", "elapsed_s",
)

#: Reason of a CNN point asked to build (the explorer builds no CNN point).
NO_CNN_GATEWARE = ("not built: the explorer does not build CNN points (of the CNN presets only "
                   "orangecrab-25f-cnn meets timing, #15); figures from the emulator at the "
                   "preset's target clock")

_BUILD_RECORD = "does-not-fit.json"


def quantize_for_width(workload, bits, mode):
    """Return the :class:`~tessera.quantize.QuantizedModel` of ``workload`` at ``bits``."""
    import tessera
    return tessera.quantize(list(workload.layers), calibration=workload.x_calibration,
                            mode=mode, bits=bits)


def emulate(qmodel, config, x_test, y_test, batch, *, raw=False):
    """Return accuracy and cycle figures of ``qmodel`` on the emulator of ``config``.

    ``x_test`` is float (``raw``: already quantized) or ``None`` (one row of zeros measures the
    cycles); ``y_test`` ``None`` gives no accuracy.
    """
    import tessera
    if x_test is None:
        x_test, raw = np.zeros((1, qmodel.in_features), np.float32), False
    x_q = x_test if raw else qmodel.quantize_input(x_test)
    reference = qmodel.predict(x_q, raw=True)
    with tessera.connect("emu", config=config) as dev:
        dev.clear_counters()
        dev.run(qmodel, x_q[:1], raw=True)             # setup frames + one row, cold
        cold = dev.counters()["cycles"]
        dev.clear_counters()
        dev.run(qmodel, x_q[:1], raw=True)             # one row, weights as loaded by now
        latency = dev.counters()["cycles"]
        dev.clear_counters()
        outputs = [dev.run(qmodel, x_q[start:start + batch], raw=True)
                   for start in range(0, len(x_q), batch)]
        counters = dev.counters()
    out = np.concatenate(outputs)
    return {
        "accuracy": None if y_test is None else float((np.argmax(out, axis=1) == y_test).mean()),
        "outputs_identical": bool(np.array_equal(out, reference)),
        "cycles_per_inference": counters["cycles"] / len(x_q),
        "latency_cycles": int(latency),
        "setup_cycles": int(cold - latency),
        "utilisation": float(counters["utilisation"]),
        "macs_per_inference": counters["macs"] / len(x_q),
        "counters": {k: int(v) for k, v in counters.items() if k != "utilisation"},
    }


def _no_fit(reason):
    return {"status": NO_FIT, "reason": reason}


def build_point(point, config, cache_root, *, seed=1):
    """Return the build part of a point's record, building the bitstream if not cached."""
    from tessera.hw.build import BuildError, build_bitstream, check_fits
    from tessera.hw.report import BuildReport
    out_dir = build_directory(cache_root, point.board, config.hash_hex, point.clock_mhz, seed)
    if (out_dir / "report.json").is_file():
        return {"status": BUILD_OK, "report": BuildReport.load(out_dir / "report.json"),
                "cached": True, "dir": str(out_dir)}
    if (out_dir / _BUILD_RECORD).is_file():
        record = json.loads((out_dir / _BUILD_RECORD).read_text())
        return {**record, "cached": True, "dir": str(out_dir)}
    try:
        check_fits(point.board, config)
    except BuildError as e:                    # estimated before any tool runs
        record = _no_fit(str(e))
        write_json(out_dir / _BUILD_RECORD, record)
        return {**record, "cached": False, "dir": str(out_dir)}
    try:
        report = build_bitstream(point.board, config, point.clock_mhz, out_dir, seed=seed)
    except BuildError as e:
        message = str(e)
        # nextpnr ran out of cells (BuildError.overflow names them in newer tessera.hw.build)
        if getattr(e, "overflow", None) or message.startswith("The design does not fit"):
            record = _no_fit(message)
            write_json(out_dir / _BUILD_RECORD, record)
            return {**record, "cached": False, "dir": str(out_dir)}
        return {"status": BUILD_FAILED, "reason": message, "cached": False, "dir": str(out_dir)}
    return {"status": BUILD_OK, "report": report, "cached": False, "dir": str(out_dir)}


def _resource(report, name):
    used, _ = report.used(name)
    return used


def evaluate_point(point, workload, cache_root, *, mode="onnx", batch=64, seed=1, build=True):
    """Evaluate ``point`` on ``workload`` and return its record (see the module docstring).

    Parameters
    ----------
    point : DesignPoint or dict
    workload : tessera.explore.sources.Workload
    cache_root : path
        The sweep's cache directory; builds go to its ``builds/``.
    mode : str
        Requantization mode of every layer.
    batch : int
        Rows per device call when measuring cycles per inference.
    seed : int
        nextpnr placement seed.
    build : bool
        Build the bitstream (False: emulator figures only; resources and Fmax are ``None``, and
        the status is ``None`` or, when the part cannot hold the configuration, "does not fit").
    """
    start = time.monotonic()
    point = DesignPoint.from_dict(point) if isinstance(point, dict) else point
    config = point.config()
    if not config.supports(mode):
        raise ValueError(f"{point.label}: the board's configuration builds requant modes "
                         f"{', '.join(config.requant_modes)} only, not {mode!r}; use --mode "
                         f"{config.requant_modes[0]}")
    record = {"point": point.to_dict(), "label": point.label, "config": config.to_dict(),
              "config_hash": config.hash_hex, "mode": mode,
              **dict.fromkeys(("accuracy", "outputs_identical", "cycles_per_inference",
                               "latency_cycles", "setup_cycles", "utilisation",
                               "macs_per_inference", "counters")),
              "status": None, "reason": None, "lut4": None, "ff": None, "dsp": None,
              "bram": None, "fmax_mhz": None, "target_mhz": None, "timing_met": None,
              "latency_us": None, "latency_clock_mhz": None, "throughput_ips": None,
              "peak_macs_per_cycle": config.peak_macs_per_cycle, "memory": None, "build": None}
    if point.cnn:
        record.update(_cnn_figures(point, config, workload))
    else:
        qmodel = workload.quantized or quantize_for_width(workload, point.bits, mode)
        record.update(emulate(qmodel, config, workload.x_test, workload.y_test, batch,
                              raw=workload.quantized is not None))
    if point.cnn:
        if build and record["status"] is None:
            record["reason"] = NO_CNN_GATEWARE
    elif not build:
        # The fit check is host-side and takes no time: a point its part cannot hold is
        # reported as such (and kept off the Pareto front) even when nothing is built.
        from tessera.hw.build import BuildError, check_fits
        try:
            check_fits(point.board, config)
        except BuildError as e:
            record.update(_no_fit(str(e)))
    else:
        result = build_point(point, config, cache_root, seed=seed)
        record["status"] = result["status"]
        record["reason"] = result.get("reason")
        record["build"] = {"dir": result["dir"], "cached": result["cached"]}
        report = result.get("report")
        if report is not None:
            fmax = float(report.fmax_design_mhz)
            record.update(
                lut4=_resource(report, "lut4"), ff=_resource(report, "ff"),
                dsp=_resource(report, "dsp"), bram=_resource(report, "bram"),
                fmax_mhz=fmax, target_mhz=float(report.target_mhz),
                timing_met=bool(report.timing_met),
                latency_us=record["latency_cycles"] / fmax if fmax else None,
                latency_clock_mhz=fmax or None,
                throughput_ips=fmax * 1e6 / record["cycles_per_inference"] if fmax else None)
            record["build"].update(resources=report.resources, elapsed_s=report.elapsed_s,
                                   critical_path=report.critical_path_summary,
                                   bitstream=report.bitstream)
    if record["latency_us"] is None and record["status"] is None:
        _at_clock(record, point.clock_mhz)
    record["elapsed_s"] = round(time.monotonic() - start, 2)
    return record


def _at_clock(record, clock_mhz):
    """Set latency in µs and inferences per second at ``clock_mhz`` (no build: the target)."""
    record.update(latency_us=record["latency_cycles"] / clock_mhz, latency_clock_mhz=clock_mhz,
                  throughput_ips=clock_mhz * 1e6 / record["cycles_per_inference"])


def _cnn_figures(point, config, workload):
    """Return the record fields of a CNN point (see :mod:`tessera.explore.quantized`)."""
    from tessera.hw.boards import get_board

    from .quantized import graph_figures
    multipliers = get_board(point.board).capacity["dsp"]
    if config.rows * config.cols > multipliers:
        return _no_fit(f"{point.rows}x{point.cols} MACs need {config.rows * config.cols} "
                       f"hardware multipliers but the {get_board(point.board).device} has "
                       f"{multipliers}; use a smaller array")
    figures = graph_figures(workload.quantized, config, workload.x_test, workload.y_test)
    if not figures.pop("fits"):
        return _no_fit(figures["reason"])
    return figures
