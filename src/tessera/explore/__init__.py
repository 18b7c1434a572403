"""Co-design explorer: sweep the hardware and the quantization together, show the trade-offs.

For every point of a grid of boards × array shapes × operand widths, :func:`run_sweep` measures
the quantized model's accuracy on the user's data and its cycles per inference on the emulator
(bit-exact with the RTL), and builds the bitstream for LUTs, flip-flops, DSPs, block RAMs and
Fmax; it then marks the Pareto front (accuracy vs latency vs LUTs). Points run on a local process
pool or a Dask cluster and are cached, so an interrupted sweep resumes. ``tessera explore`` is
the command line; see docs/explore.md. A quantized model file (an int8 ``.tflite`` such as the
MLPerf Tiny models) is swept at its own width, a CNN on each board's CNN preset with the swept
array shape (:mod:`tessera.explore.quantized`).

Only NumPy is imported here; Amaranth (builds), matplotlib (plots) and Dask (clusters) are
imported when used.
"""

from .cache import ResultCache, point_key
from .evaluate import BUILD_FAILED, BUILD_OK, NO_FIT, evaluate_point
from .executors import default_workers, run_tasks
from .grid import DesignPoint, check_bits, make_grid, parse_int_list
from .pareto import OBJECTIVES, dominates, mark_front, pareto_front
from .report import format_markdown, format_table, write_reports
from .sources import Workload, load_workload
from .sweep import SweepResult, check_rtl, choose_rtl_points, run_sweep

__all__ = [
    "run_sweep", "SweepResult", "check_rtl", "choose_rtl_points",
    "DesignPoint", "make_grid", "parse_int_list", "check_bits",
    "Workload", "load_workload",
    "evaluate_point", "BUILD_OK", "NO_FIT", "BUILD_FAILED",
    "ResultCache", "point_key",
    "run_tasks", "default_workers",
    "OBJECTIVES", "dominates", "pareto_front", "mark_front",
    "format_markdown", "format_table", "write_reports",
]
