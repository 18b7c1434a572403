"""``tessera explore`` end to end with real bitstream builds: local pool, Dask, resume.

Two cheap iCEBreaker points (1x2 and 2x2 arrays, int8) are built once by the local-pool sweep
(module fixture, ~3-4 min on a shared 2-core machine); the Dask and resume tests copy its build
cache, so they re-run the emulator part for real and reuse the bitstreams.
"""

import contextlib
import io
import json
import shutil

import numpy as np
import pytest

import tessera
from tessera.cli import main
from tessera.explore import ResultCache, load_workload, make_grid, run_sweep
from tessera.hw.report import BuildReport

pytestmark = pytest.mark.slow

BOARD = "icebreaker"
ARGS = ["explore", "digits", "--board", BOARD, "--rows", "1,2", "--cols", "2", "--bits", "8"]


@pytest.fixture(scope="module")
def workload():
    return load_workload("digits")


@pytest.fixture(scope="module")
def pool_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore-pool")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(ARGS + ["--workers", "2", "-o", str(out), "--json"])
    return {"out": out, "status": status, "result": json.loads(stdout.getvalue()),
            "stderr": stderr.getvalue()}


def _reference_accuracy():
    from tessera.cli.demo import train_digits_mlp
    clf, x_train, x_test, _, y_test = train_digits_mlp(seed=0)
    qmodel = tessera.quantize(clf, calibration=x_train, mode="onnx")
    return float((clf.classes_[np.argmax(qmodel.predict(x_test), axis=1)] == y_test).mean())


def _copy_builds(source, out):
    shutil.copytree(source / "cache" / "builds", out / "cache" / "builds")
    return out / "cache"


def test_pool_sweep_measures_every_point(pool_sweep):
    assert pool_sweep["status"] == 0, pool_sweep["stderr"]
    result = pool_sweep["result"]
    records = {r["label"]: r for r in result["points"]}
    assert sorted(records) == ["icebreaker 1x2 int8", "icebreaker 2x2 int8"]
    assert result["evaluated"] == 2 and result["cached"] == 0
    accuracy = _reference_accuracy()
    for r in records.values():
        assert r["outputs_identical"]                       # emulator == NumPy reference
        assert r["accuracy"] == accuracy
        assert 0 < r["utilisation"] <= 1
        assert r["latency_cycles"] > 0 and r["setup_cycles"] >= 0
        assert r["config"]["rows"] * r["config"]["cols"] == r["point"]["rows"] * 2
        assert r["config"]["act_depth"] == 1024                 # the board's preset buffers
    # A wider array needs fewer cycles per inference for the same MACs.
    one, two = records["icebreaker 1x2 int8"], records["icebreaker 2x2 int8"]
    assert two["cycles_per_inference"] < one["cycles_per_inference"]
    assert two["macs_per_inference"] == one["macs_per_inference"] == 64 * 32 + 32 * 10


def test_pool_sweep_takes_resources_from_the_real_builds(pool_sweep):
    for r in pool_sweep["result"]["points"]:
        build_dir = pool_sweep["out"] / "cache" / "builds" / \
            f"{BOARD}-{r['config_hash']}-{r['point']['clock_mhz']:g}mhz-s1"
        assert r["build"]["dir"] == str(build_dir)
        assert r["status"] == "ok", r["reason"]        # both fit the UP5K
        report = BuildReport.load(build_dir / "report.json")
        assert report.config_hash == r["config_hash"]
        assert r["lut4"] == report.resources["lut4"]["used"]
        assert r["dsp"] == report.resources["dsp"]["used"] == r["point"]["rows"] * 2
        assert r["fmax_mhz"] == report.fmax_design_mhz
        assert r["timing_met"] == report.timing_met
        assert r["latency_us"] == pytest.approx(r["latency_cycles"] / r["fmax_mhz"])
        assert r["throughput_ips"] == pytest.approx(
            r["fmax_mhz"] * 1e6 / r["cycles_per_inference"])
        assert (build_dir / report.bitstream).is_file()


def test_pool_sweep_writes_reports(pool_sweep):
    out, result = pool_sweep["out"], pool_sweep["result"]
    assert json.loads((out / "explore.json").read_text()) == result
    markdown = (out / "explore.md").read_text()
    for r in result["points"]:
        assert f"| {r['label']} | {r['accuracy']:.2%} |" in markdown
    built = any(r["latency_us"] is not None for r in result["points"])
    assert ("Pareto front (accuracy ↑, latency ↓, LUTs ↓): " if built else
            "Pareto front (accuracy ↑, latency in cycles ↓): ") in markdown
    pngs = ["accuracy_vs_latency.png"] + (["accuracy_vs_luts.png", "latency_vs_luts.png"]
                                          if built else [])
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[2/2] icebreaker" in pool_sweep["stderr"]


def test_rerun_comes_from_the_cache(pool_sweep, workload):
    points = make_grid([BOARD], [1, 2], [2], [8])
    result = run_sweep(points, workload, pool_sweep["out"] / "cache", workers=2)
    assert result.evaluated == 0 and result.cached == 2
    assert [r["accuracy"] for r in result.records] == \
        [r["accuracy"] for r in pool_sweep["result"]["points"]]


def _figures(record):
    return {k: record[k] for k in ("label", "accuracy", "cycles_per_inference", "latency_cycles",
                                   "status", "lut4", "fmax_mhz", "config_hash", "pareto")}


def test_dask_cluster_sweep(pool_sweep, workload, tmp_path):
    distributed = pytest.importorskip("distributed")
    cache = _copy_builds(pool_sweep["out"], tmp_path)
    points = make_grid([BOARD], [1, 2], [2], [8])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        result = run_sweep(points, workload, cache, scheduler=cluster.scheduler_address)
    assert result.evaluated == 2 and result.cached == 0
    assert all(r["build"]["cached"] for r in result.records)   # bitstreams reused
    assert [_figures(r) for r in result.records] == \
        [_figures(r) for r in pool_sweep["result"]["points"]]


def test_interrupted_sweep_resumes_with_the_remaining_points(pool_sweep, workload, tmp_path):
    cache = _copy_builds(pool_sweep["out"], tmp_path)
    # 8x2 needs 16 SB_MAC16 for its MACs: refused before any tool runs.
    points = make_grid([BOARD], [1, 2, 8], [2], [8])
    seen = []

    def stop_after_one(record, done, total, cached):
        seen.append(record["label"])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(points, workload, cache, workers=2, progress=stop_after_one)
    assert len(seen) == 1 and len(ResultCache(cache).keys()) == 1

    labels = []
    result = run_sweep(points, workload, cache, workers=2,
                       progress=lambda r, done, total, cached: labels.append((r["label"], cached)))
    assert result.evaluated == 2 and result.cached == 1
    assert (seen[0], True) in labels
    assert sorted(label for label, cached in labels if not cached) == \
        sorted({p.label for p in points} - {seen[0]})
    big = result.records[2]
    assert big["status"] == "does not fit"
    assert big["reason"].startswith("Configuration does not fit icebreaker: it needs 16 "
                                    "hardware multipliers (8x2 MACs) but the iCE40UP5K has 8")
    assert big["lut4"] is None and big["latency_us"] is None and not big["pareto"]
    assert big["accuracy"] == result.records[0]["accuracy"]    # the emulator still ran it


def test_failed_builds_and_emulator_only_records_are_redone(workload, tmp_path):
    from tessera.explore import point_key
    (point,) = make_grid([BOARD], [8], [2], [8])       # refused before any tool runs
    key = point_key(point, point.config().hash_hex, workload.model_hash, workload.data_hash,
                    mode="onnx", batch=64, seed=1)
    cache = ResultCache(tmp_path)
    emulated = run_sweep([point], workload, tmp_path, build=False, workers=1)
    # The fit check needs no tool: an emulator-only sweep knows that the point does not fit.
    assert emulated.records[0]["status"] == "does not fit" and cache.keys() == [key]
    assert not emulated.records[0]["pareto"]
    assert emulated.records[0]["reason"].startswith("Configuration does not fit icebreaker")
    # An emulator-only record of a point that fits (status None) answers an emulator-only
    # sweep, not one with builds ...
    cache.put(key, {**emulated.records[0], "status": None, "reason": None})
    assert run_sweep([point], workload, tmp_path, build=False, workers=1).evaluated == 0
    built = run_sweep([point], workload, tmp_path, workers=1)
    assert built.evaluated == 1 and built.records[0]["status"] == "does not fit"
    # ... and a build that failed (a tool error, not "does not fit") is tried again.
    cache.put(key, {**built.records[0], "status": "failed", "reason": "yosys crashed"})
    again = run_sweep([point], workload, tmp_path, workers=1)
    assert again.evaluated == 1 and again.records[0]["status"] == "does not fit"
    assert run_sweep([point], workload, tmp_path, workers=1).evaluated == 0
