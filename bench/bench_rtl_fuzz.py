"""RTL fuzzing at scale: random and mutated frames into the RTL, every answer as the emulator's.

Runs ``sim/system_fuzz.py`` (see docs/simulation.md, "Fuzzing") on the Verilator builds of the
system-test configurations (``tests/sim_helpers.py``, and the operand-width variants of the 2x4
one of ``tests/test_sim_system.py``: ``2x4-int4``, ``2x4-a8w4``, ``2x4-int16``; all but 8x8 have
short receive timeouts, so the timeout stimuli cost little), with more stimuli and other seeds than
the default suite's 1500 of seed 1. ``--cnn`` runs the ISA version 3 configurations instead
(``4x2-cnn``, ``4x2-cnn-banked``: programs with ``WINDOW``, ``CONV`` and ``ADD``). Prints, per
configuration: stimuli sent, undefined and undefined run on the RTL alone, requests, responses
checked, mismatches and hangs (0 unless it failed), simulated cycles and wall time. A failure
prints the stimulus, its bytes and the seed, and exits 1.

    .venv/bin/python bench/bench_rtl_fuzz.py [--stimuli 10000] [--seed 1] [--json]
        [--configs 2x4,4x4-tflite | --cnn]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sim_helpers import CNN_CONFIGS, CONFIGS  # noqa: E402
from test_sim_system import WIDTH_CONFIGS  # noqa: E402

from tessera.sim import runner  # noqa: E402
from tessera.sim.fuzz_frames import run_fuzz  # noqa: E402


def fuzz_configs() -> dict:
    """The system-test configurations, the operand-width variants of the 2x4 one and the ISA
    version 3 ones."""
    widths = {name: CONFIGS["2x4"].replace(**fields, acc_bits=None, requant_modes=None, lut=None)
              for name, fields in WIDTH_CONFIGS.items()}
    return {**CONFIGS, **widths, **CNN_CONFIGS}


COLUMNS = ("sent", "undefined", "undefined_run", "requests", "responses_checked", "mismatches",
           "hangs", "cycles", "wall_s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stimuli", type=int, default=10000, help="stimuli per configuration")
    parser.add_argument("--seed", type=int, default=1, help="seed of the stimuli")
    configs = fuzz_configs()
    parser.add_argument("--configs", default="2x4,4x4-tflite",
                        help=f"comma-separated, of {', '.join(configs)} (8x8: its receive "
                             "timeout is 2^20 cycles, so slow)")
    parser.add_argument("--cnn", action="store_true",
                        help=f"run the ISA version 3 configurations ({', '.join(CNN_CONFIGS)}) "
                             "instead of --configs")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    names = list(CNN_CONFIGS) if args.cnn else args.configs.split(",")
    unknown = [n for n in names if n not in configs]
    if unknown or args.stimuli < 1:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}: use {', '.join(configs)}"
                     if unknown else f"--stimuli must be at least 1, not {args.stimuli}")
    results = {}
    for name in names:
        with tempfile.TemporaryDirectory(prefix="tessera-fuzz-") as work:
            try:
                results[name] = run_fuzz(runner.build(configs[name], "verilator"),
                                         configs[name], stimuli=args.stimuli, seed=args.seed,
                                         test_dir=work)
            except AssertionError as e:
                print(f"{name}: the fuzz run failed:\n{str(e)[:4000]}", file=sys.stderr)
                return 1
    if args.json:
        print(json.dumps({"stimuli": args.stimuli, "seed": args.seed, "configs": results}))
        return 0
    print(f"RTL fuzzing, Verilator, seed {args.seed}, {args.stimuli} stimuli per configuration")
    print(f"{'config':<12}" + "".join(f"{c:>18}" for c in COLUMNS))
    for name, summary in results.items():
        print(f"{name:<12}" + "".join(f"{summary[c]:>18}" for c in COLUMNS))
    for name, summary in results.items():
        print(f"{name} response statuses: {summary['statuses']}")
        print(f"{name} instructions in programs answered OK: {summary['executed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
