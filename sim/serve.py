"""Run one RTL simulation session serving the host link (``python -m tessera.sim.serve``).

Started by :mod:`tessera.sim.backend` in a child process: it runs a cocotb bridge module
(:mod:`bridge` for the byte-stream top, :mod:`bridge_uart` for the UART top) against a cached
build until the host closes the connection, and exits with status 1 and the failure on stderr
if the simulation fails.
"""

import argparse
import sys
from pathlib import Path

from tessera.sim.runner import SIMULATORS, SimBuild, run_test
from tessera.sim.waves import build_formats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera.sim.serve",
                                     description="Serve the Tessera host link from an RTL "
                                                 "simulation (internal; see tessera.connect).")
    parser.add_argument("--simulator", required=True, choices=SIMULATORS)
    parser.add_argument("--build-dir", required=True, type=Path)
    parser.add_argument("--toplevel", required=True)
    parser.add_argument("--module", default="bridge", choices=["bridge", "bridge_uart", "bridge_gates"])
    parser.add_argument("--address", required=True, help="host:port of the listening host")
    parser.add_argument("--test-dir", required=True, type=Path)
    parser.add_argument("--waves", type=Path, help="dump a waveform here (.fst or .vcd; the "
                                                   "build must have been made for it)")
    args = parser.parse_args(argv)
    sim = SimBuild(args.simulator, args.toplevel, args.build_dir,
                   args.build_dir / f"{args.toplevel}.v",
                   waves=build_formats(args.simulator, args.waves and args.waves.suffix))
    try:
        run_test(sim, args.module, test_dir=args.test_dir,
                 extra_env={"TESSERA_BRIDGE": args.address}, waves_file=args.waves)
    except AssertionError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
