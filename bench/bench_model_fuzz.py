"""Models we are not shown, at scale: many random Keras CNNs against TFLite Micro.

Builds the seeded models of ``tests/model_fuzz.py`` (the vocabulary is listed there), converts
each with the real ``TFLiteConverter`` (full-integer int8; conversions cached in ``--cache``),
and requires ``tessera.load_model(...).predict`` and ``connect("emu", config=<preset>).run`` to
equal the ``tflite-micro`` wheel on 5 discriminating + ``--rows`` random int8 inputs, or the
import to refuse naming the operator. A model that does not fit a preset runs on the next
larger one; one that fits none from there up is "too_large" (its ``predict`` still equals TFLM).
Prints the outcomes (equal, refused, too_large, MISMATCH, error), the refusals by operator,
how often each TFLite operator was exercised and the wall time; a mismatch prints its seed and
layers and makes the exit status 1. ``tests/test_model_fuzz.py`` runs 12 of these seeds in the
default suite.

    .venv/bin/python bench/bench_model_fuzz.py [--seeds 0:200] [--rows 8]
        [--presets icebreaker-cnn,orangecrab-25f-cnn] [--wide] [--cache DIR] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import model_fuzz  # noqa: E402


def _seeds(text):
    start, _, stop = text.partition(":")
    return range(int(start), int(stop)) if stop else [int(s) for s in text.split(",")]


def run(seeds, *, rows, presets, cache, wide=False):
    """Return the per-seed records and the summary of one fuzzing run."""
    records, operators = [], collections.Counter()
    refusals = collections.Counter()
    start = time.perf_counter()
    for seed in seeds:
        record = {"seed": seed}
        try:
            data, record["layers"] = model_fuzz.convert_cached(seed, cache, wide=wide)
        except Exception as exc:                      # the converter's own failures
            record.update(outcome="convert_error", detail=f"{type(exc).__name__}: {exc}"[:300])
            records.append(record)
            continue
        ops = model_fuzz.operators(data)
        operators.update(set(ops))
        record["operators"] = ops
        try:
            for preset in presets:
                outcome, record["detail"] = model_fuzz.check(data, seed=seed, rows=rows,
                                                             preset=preset)
                if record.get("outcome") != "too_large":     # "too_large" on any preset stays
                    record["outcome"] = outcome
                if outcome == "refused":
                    kind = re.search(r"operator \d+ \(([A-Z0-9_:]+)", record["detail"])
                    refusals[kind.group(1)] += 1
                    break
        except AssertionError as exc:
            record.update(outcome="MISMATCH", detail=str(exc).strip().splitlines()[0][:300])
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-3:]
            record.update(outcome="error", detail=f"{type(exc).__name__}: {exc}"[:300],
                          traceback=[f"{f.filename}:{f.lineno} {f.name}" for f in where],
                          preset=preset)
        records.append(record)
    outcomes = collections.Counter(r["outcome"] for r in records)
    summary = {"models": len(records), "outcomes": dict(outcomes),
               "refused_by_operator": dict(refusals),
               "models_per_operator": dict(sorted(operators.items())),
               "presets": list(presets), "random_rows": rows, "wide": wide,
               "wall_s": round(time.perf_counter() - start, 1)}
    return records, summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0:200", help="START:STOP or a comma-separated list")
    parser.add_argument("--rows", type=int, default=8, help="random int8 inputs per model")
    parser.add_argument("--presets", default=model_fuzz.PRESET,
                        help="comma-separated CNN presets the emulated device runs")
    parser.add_argument("--cache", default=None,
                        help="directory of converted models (default: a temporary one)")
    parser.add_argument("--wide", action="store_true",
                        help="4x the channels, maps 12 larger (tiling, weight streaming)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        cache.mkdir(parents=True, exist_ok=True)
        records, summary = run(_seeds(args.seeds), rows=args.rows,
                               presets=args.presets.split(","), cache=cache, wide=args.wide)
    bad = [r for r in records if r["outcome"] not in ("equal", "refused", "too_large")]
    if args.json:
        print(json.dumps({"summary": summary, "failures": bad}))
    else:
        print(f"{summary['models']} models, presets {', '.join(summary['presets'])}, "
              f"{summary['wall_s']} s")
        for outcome, count in sorted(summary["outcomes"].items()):
            print(f"  {outcome:14s} {count}")
        print("refused, by operator:", summary["refused_by_operator"] or "none")
        print("models per TFLite operator:", summary["models_per_operator"])
        for r in bad:
            print(f"seed {r['seed']}: {r['outcome']}: {r['detail']}\n    {r.get('layers')}")
            for line in r.get("traceback", []):
                print(f"    at {line}")
        print(json.dumps(summary))
    return 1 if any(r["outcome"] == "MISMATCH" for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
