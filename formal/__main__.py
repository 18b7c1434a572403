"""``python -m formal [--quick] [--workdir DIR] [NAME ...]``: run the formal checks.

Prints one line per check (verdict, k-induction or bounded, depth, seconds) and exits 1 if any
check does not pass, 2 for an unknown name.
"""

import argparse
import sys

from .checks import CHECKS, run_check


def main(argv=None):
    """Run the checks named on the command line (all by default) and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m formal",
                                     description="Run the formal checks of formal/checks.py.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"checks to run (default: all but those run only when named): "
                             f"{', '.join(CHECKS)}")
    parser.add_argument("--quick", action="store_true",
                        help="only the checks that make test runs")
    parser.add_argument("--workdir", default="build/formal",
                        help="where the RTLIL, .sby files and traces go (default build/formal)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in CHECKS]
    if unknown:
        print(f"python -m formal: unknown check {unknown[0]!r}; choose from "
              f"{', '.join(CHECKS)}", file=sys.stderr)
        return 2
    checks = ([CHECKS[name] for name in args.names] if args.names else
              [check for check in CHECKS.values() if not check.named_only])
    if args.quick:
        checks = [check for check in checks if check.quick]
    failed = 0
    for check in checks:
        verdict = run_check(check, args.workdir)
        print(f"{verdict.summary()}: {check.claim}", flush=True)
        if not verdict.passed:
            failed += 1
            print(verdict.log, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
