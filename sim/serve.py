"""Run one RTL simulation session serving the host link (``python -m tessera.sim.serve``).

Started by :func:`tessera.sim.backend.connect_sim` in a child process: it runs the cocotb
:mod:`tessera.sim.bridge` test against a cached build until the host closes the socket.
"""

import argparse
import sys
from pathlib import Path

from tessera.sim.runner import SimBuild, TOPLEVEL, run_test


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tessera.sim.serve",
                                     description="Serve the Tessera host link from an RTL "
                                                 "simulation (internal; see tessera.connect).")
    parser.add_argument("--simulator", required=True, choices=["verilator", "icarus"])
    parser.add_argument("--build-dir", required=True, type=Path)
    parser.add_argument("--address", required=True, help="host:port of the listening host")
    parser.add_argument("--test-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    sim = SimBuild(args.simulator, TOPLEVEL, args.build_dir, args.build_dir / f"{TOPLEVEL}.v")
    try:
        run_test(sim, "bridge", test_dir=args.test_dir,
                 extra_env={"TESSERA_BRIDGE": args.address})
    except AssertionError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
