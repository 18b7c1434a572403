"""An emulator-only sweep over operand widths: each width quantized, compiled and run bit-exactly.

The real-build sweeps (tests/test_explore_sweep.py) run int8; this one checks, in seconds, that
every width of a sweep gets its own quantization, configuration and bit-exact emulator run.
"""

import numpy as np

import tessera
from tessera.explore import load_workload, make_grid, run_sweep


def test_each_width_is_quantized_and_run_at_that_width(tmp_path):
    workload = load_workload("digits")
    points = make_grid(["ulx3s-25f"], [2], [4], [4, 8, 16])
    result = run_sweep(points, workload, tmp_path, build=False, workers=1)
    records = {r["point"]["bits"]: r for r in result.records}
    assert sorted(records) == [4, 8, 16]
    for bits, r in records.items():
        assert (r["config"]["input_bits"], r["config"]["weight_bits"]) == (bits, bits)
        assert r["config"]["acc_bits"] == (48 if bits == 16 else 32)
        assert r["outputs_identical"]                    # emulator == NumPy reference
        qmodel = tessera.quantize(list(workload.layers), calibration=workload.x_calibration,
                                  mode="onnx", bits=bits)
        predicted = np.argmax(qmodel.predict(workload.x_test), axis=1)
        assert r["accuracy"] == float((predicted == workload.y_test).mean())
        assert r["macs_per_inference"] == 64 * 32 + 32 * 10
    # Narrower operands move fewer link bytes for the same work.
    rx = {bits: records[bits]["counters"]["rx_bytes"] for bits in records}
    assert rx[4] < rx[8] < rx[16]
    assert records[4]["accuracy"] < records[8]["accuracy"]    # int4 costs digits accuracy
