"""Accuracy per model and operand width: float, int8 reference and emulator, both requant modes.

Trains small seeded scikit-learn MLPs on the offline data sets (digits, wine, iris),
quantizes each for every width of ``--bits`` and measures the NumPy reference's accuracy, and
runs the test split on the emulator of an 8x8 accelerator of that width (``with_widths``)
through :mod:`tessera.explore`, checking it bit for bit against the reference. A requant mode the
width's accumulator cannot build (``tflite`` at 16x16 bits, 48-bit accumulators) is reported as
such. Prints a table; ``--json`` prints the figures as JSON.

    .venv/bin/python bench/bench_accuracy.py [--bits 8,4,16] [--json]
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np

#: ``name: (loader, hidden layer sizes)``.
MODELS = {
    "digits": ("load_digits", (32,)),
    "wine": ("load_wine", (16,)),
    "iris": ("load_iris", (8,)),
}


def _workload(name, seed=0):
    import sklearn.datasets
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    from tessera.explore.sources import Workload, array_digest
    from tessera.quantize import import_model
    loader, hidden = MODELS[name]
    x, y = getattr(sklearn.datasets, loader)(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed,
                                                        stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = (scaler.transform(a).astype(np.float32) for a in (x_train, x_test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=500, random_state=seed)
        clf.fit(x_train, y_train)
    layers = tuple((l.weight, l.bias, l.activation) for l in import_model(clf))
    sizes = "-".join(str(n) for n in [layers[0][0].shape[0]] + [w.shape[1] for w, _, _ in layers])
    return Workload(name=f"{name} MLP {sizes}", layers=layers, x_calibration=x_train,
                    x_test=x_test, y_test=np.searchsorted(clf.classes_, y_test),
                    model_hash=array_digest(*[a for l in layers for a in l]),
                    data_hash=array_digest(x_train, x_test))


def run(bits, modes=("onnx", "tflite")):
    """Return one row per (model, mode, width)."""
    from tessera import AcceleratorConfig
    from tessera.explore.evaluate import emulate, quantize_for_width
    base = AcceleratorConfig()
    rows = []
    for name in MODELS:
        workload = _workload(name)
        float_accuracy = workload.float_accuracy()
        for mode in modes:
            for width in bits:
                row = {"model": workload.name, "mode": mode, "bits": width,
                       "test_rows": int(len(workload.x_test)), "float_accuracy": float_accuracy}
                try:
                    qmodel = quantize_for_width(workload, width, mode)
                    reference = qmodel.predict(workload.x_test)
                except ValueError as e:         # the host stack cannot run this width/mode
                    rows.append({**row, "status": "not implemented", "reason": str(e)})
                    continue
                row["reference_accuracy"] = float(
                    (np.argmax(reference, axis=1) == workload.y_test).mean())
                config = base.with_widths(width)
                if not config.supports(mode):   # e.g. tflite needs 32-bit accumulators
                    rows.append({**row, "status": "host only",
                                 "reason": f"an int{width} accelerator builds requant mode(s) "
                                           f"{', '.join(config.requant_modes)} only"})
                    continue
                figures = emulate(qmodel, config, workload.x_test, workload.y_test, batch=64)
                rows.append({**row, "status": "ok",
                             "emulator_accuracy": figures["accuracy"],
                             "bit_exact": figures["outputs_identical"],
                             "cycles_per_inference_8x8": figures["cycles_per_inference"]})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", default="8,4,16", help="widths (default 8,4,16)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    from tessera.explore.grid import parse_int_list
    rows = run(parse_int_list(args.bits, "--bits"))
    if args.json:
        print(json.dumps({"config": "8x8", "rows": rows}, indent=2))
    else:
        for r in rows:
            if r["status"] == "not implemented":
                print(f"{r['model']:<28} {r['mode']:<7} int{r['bits']:<3} {r['status']}")
                continue
            if r["status"] == "host only":
                print(f"{r['model']:<28} {r['mode']:<7} int{r['bits']:<3} float "
                      f"{r['float_accuracy']:.2%}  reference {r['reference_accuracy']:.2%}  "
                      f"emulator: {r['reason']}")
                continue
            print(f"{r['model']:<28} {r['mode']:<7} int{r['bits']:<3} float "
                  f"{r['float_accuracy']:.2%}  reference {r['reference_accuracy']:.2%}  "
                  f"emulator {r['emulator_accuracy']:.2%}  bit-exact {r['bit_exact']}")
    return 0 if all(r.get("bit_exact", True) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
