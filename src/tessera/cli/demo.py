"""``tessera demo``: the main job, end to end: a digits MLP, then an MLPerf Tiny CNN.

Digits: trains a scikit-learn MLP (64-32-10) on the digits data set (seeded), quantizes it to
int8 with calibration on the training split, runs the whole test split through the bit-exact
emulator and through the RTL of the accelerator in simulation, and prints accuracy (float, int8
reference, emulator, RTL), how many outputs are bit-identical, cycles and simulated time per
inference (at --clock-mhz), utilisation, and the wall time each device took. KWS: the MLPerf Tiny
keyword-spotting DS-CNN on a board's CNN preset, TFLite Micro vs Tessera's reference vs the
emulator vs the RTL, bit for bit, then its latency on every board preset
(tessera/cli/demo_kws.py).
"""

from __future__ import annotations

import json
import time

from .demo_kws import format_kws, run_kws
from .options import nonnegative_int, positive_float, positive_int

__all__ = ["add_parser", "run", "run_demo", "format_report", "train_digits_mlp", "demo_failures"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo", help="a digits MLP and the MLPerf Tiny KWS CNN on the emulator and the RTL",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog="--json prints {\"digits\": {...}, \"kws\": {...}} (the parts that ran; keys "
               "in docs/quickstart.md). Exit status 1 if any output differs from its oracle "
               "or an RTL counter from the emulator's.")
    p.add_argument("--model", choices=["all", "digits", "kws"], default="all",
                   help="which part to run (default: all)")
    p.add_argument("--simulator", choices=["verilator", "icarus"],
                   help="RTL simulator (default: $SIM or the first installed)")
    p.add_argument("--no-rtl", action="store_true", help="skip the RTL simulations")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    digits = p.add_argument_group("digits part")
    digits.add_argument("--mode", choices=["onnx", "tflite"], default="onnx",
                        help="requantization rule (default: onnx)")
    digits.add_argument("--config", metavar="FILE",
                        help="AcceleratorConfig JSON (default: 8x8)")
    digits.add_argument("--batch", type=positive_int, default=45,
                        help="images per device call (default 45)")
    digits.add_argument("--clock-mhz", type=positive_float, default=100.0,
                        help="clock used to turn cycles into time (default 100)")
    kws = p.add_argument_group("KWS part")
    kws.add_argument("--board", default="icebreaker",
                     help="board or CNN preset to run on (default: icebreaker, i.e. "
                          "icebreaker-cnn; tessera.compiler.presets)")
    kws.add_argument("--kws-inputs", type=positive_int, default=100,
                     help="inputs through TFLite Micro, the reference and the emulator "
                          "(default 100)")
    kws.add_argument("--kws-rtl-inputs", type=nonnegative_int, default=2,
                     help="how many of them also run on the RTL (default 2; ~0.6 M cycles each)")
    return p


def _digits(seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)


def train_digits_mlp(seed=0):
    """Return ``(clf, x_train, x_test, y_train, y_test)``: the demo's seeded 64-32-10 MLP.

    Also used by ``tessera explore digits`` so that both commands sweep the same model.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    x_train, x_test, y_train, y_test = _digits(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=seed)
        clf.fit(x_train, y_train)
    return clf, x_train, x_test, y_train, y_test


def _run_device(dev, qmodel, x_q, batch, label):
    import numpy as np
    from .progress import Progress
    outs = []
    dev.clear_counters()
    with Progress(label, len(x_q)) as bar:
        for start in range(0, len(x_q), batch):
            outs.append(dev.run(qmodel, x_q[start:start + batch], raw=True))
            bar.advance(len(outs[-1]))
    return np.concatenate(outs), dev.counters()


def run_demo(*, mode="onnx", config=None, simulator=None, rtl=True, batch=45, clock_mhz=100.0,
             seed=0, log=print):
    """Run the digits part and return its report as a dict (see :func:`format_report`)."""
    import numpy as np

    import tessera

    config = config or tessera.AcceleratorConfig()
    log("training a 64-32-10 MLP on the digits training split ...")
    clf, x_train, x_test, y_train, y_test = train_digits_mlp(seed)
    float_acc = float((clf.predict(x_test) == y_test).mean())
    qmodel = tessera.quantize(clf, calibration=x_train, mode=mode)
    x_q = qmodel.quantize_input(x_test)
    ref = qmodel.predict(x_q, raw=True)
    classes = clf.classes_
    acc = lambda out: float((classes[np.argmax(out, axis=1)] == y_test).mean())  # noqa: E731
    report = {"model": "sklearn MLPClassifier 64-32-10 on digits", "mode": mode,
              "config": config.to_dict(), "config_hash": config.hash_hex,
              "test_images": int(len(x_test)), "float_accuracy": float_acc,
              "int8_reference_accuracy": acc(ref), "devices": {}}
    targets = [("emu", "emu")]
    if rtl:
        targets.append(("rtl", f"sim:{simulator}" if simulator else "sim"))
    for name, target in targets:
        t0 = time.monotonic()
        with tessera.connect(target, config=config) as dev:
            out, counters = _run_device(dev, qmodel, x_q, batch, f"{name:>3}")
        wall = time.monotonic() - t0
        report["devices"][name] = {
            "target": target, "accuracy": acc(out),
            "bit_identical": int((out == ref).all(axis=1).sum()),
            "outputs_identical": bool(np.array_equal(out, ref)),
            "cycles_per_inference": counters["cycles"] / len(x_q),
            "compute_cycles": counters["compute_cycles"], "macs": counters["macs"],
            "utilisation": counters["utilisation"], "cycles": counters["cycles"],
            "simulated_time_ms": counters["cycles"] / (clock_mhz * 1e3),
            "time_per_inference_us": counters["cycles"] / len(x_q) / clock_mhz,
            "wall_seconds": wall,
        }
    return report


def format_report(report, clock_mhz=100.0) -> str:
    """Return the report as a terminal table."""
    n = report["test_images"]
    lines = [f"Tessera demo — {report['model']}, mode {report['mode']!r}, "
             f"{report['config']['rows']}x{report['config']['cols']} array "
             f"(config {report['config_hash']}), {n} test images", ""]
    rows = [("float (scikit-learn)", f"{report['float_accuracy']:.2%}", "", "", "", "", ""),
            ("int8 reference (NumPy)", f"{report['int8_reference_accuracy']:.2%}", "", "", "",
             "", "")]
    for name, d in report["devices"].items():
        label = {"emu": "emulator", "rtl": f"RTL ({d['target']})"}[name]
        rows.append((label, f"{d['accuracy']:.2%}", f"{d['bit_identical']}/{n}",
                     f"{d['cycles_per_inference']:.0f}", f"{d['utilisation']:.2f}",
                     f"{d['time_per_inference_us']:.2f} µs", f"{d['wall_seconds']:.1f} s"))
    head = ("", "accuracy", "bit-identical", "cycles/inference", "utilisation",
            f"time/inference @ {clock_mhz:g} MHz", f"wall time ({n} images)")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    lines += [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines)


def run(args) -> int:
    import sys

    from tessera.compiler.presets import get_preset

    from .options import load_config
    config = load_config(args.config)
    if args.model in ("all", "kws"):
        get_preset(args.board)      # a bad --board is reported before any work
    def log(message):       # progress on stderr: stdout holds only the report
        print(message, file=sys.stderr, flush=True)
    reports = {}
    if args.model in ("all", "digits"):
        reports["digits"] = run_demo(mode=args.mode, config=config, simulator=args.simulator,
                                     rtl=not args.no_rtl, batch=args.batch,
                                     clock_mhz=args.clock_mhz, log=log)
        if not args.json:
            print(format_report(reports["digits"], args.clock_mhz), flush=True)
            if args.model == "all":
                print(flush=True)
    if args.model in ("all", "kws"):
        reports["kws"] = run_kws(board=args.board, inputs=args.kws_inputs,
                                 rtl_inputs=args.kws_rtl_inputs, simulator=args.simulator,
                                 rtl=not args.no_rtl, log=log)
        if not args.json:
            print(format_kws(reports["kws"]))
    if args.json:
        print(json.dumps(reports, indent=2))
    failures = demo_failures(reports)
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


def demo_failures(reports) -> list:
    """Return one line per check of the demo's ``reports`` that failed (empty: all passed)."""
    failures = []
    digits = reports.get("digits", {"devices": {}})
    for name, d in digits["devices"].items():
        if not d["outputs_identical"]:
            failures.append(f"digits: the {name} outputs differ from the int8 reference")
    kws = reports.get("kws")
    if kws is not None:
        if not kws["reference"]["outputs_identical"]:
            failures.append("kws: Tessera's reference differs from TFLite Micro")
        for name, d in kws["devices"].items():
            if not d["outputs_identical"]:
                failures.append(f"kws: the {name} outputs differ from TFLite Micro")
            if not d.get("counters_equal_emulator", True):
                failures.append(f"kws: the {name} counters differ from the emulator's")
    return failures
