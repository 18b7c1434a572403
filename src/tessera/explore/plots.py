"""PNG plots of a sweep (matplotlib, imported only here; ``pip install 'tessera-fpga[explore]'``).

Three scatter plots of the objective pairs — accuracy vs latency, accuracy vs LUTs, latency vs
LUTs — with the Pareto front highlighted and each point labelled with its array shape and width;
a latency or LUT axis spanning more than a factor of ten is logarithmic. Points
without a bitstream (does not fit) have no LUT count or Fmax and are left out of the plots that
need them. A sweep without builds plots accuracy vs latency in cycles only.
"""

from __future__ import annotations

__all__ = ["PLOTS", "write_plots"]

#: ``(file name, x field, y field, x label, y label)`` of each plot.
PLOTS = (
    ("accuracy_vs_latency.png", "latency_us", "accuracy", "latency per inference (µs)",
     "accuracy"),
    ("accuracy_vs_luts.png", "lut4", "accuracy", "LUT4", "accuracy"),
    ("latency_vs_luts.png", "lut4", "latency_us", "LUT4", "latency per inference (µs)"),
)

_EMULATOR_PLOTS = (
    ("accuracy_vs_latency.png", "latency_cycles", "accuracy", "latency per inference (cycles)",
     "accuracy"),
)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        from tessera.install import MissingDependencyError, install_hint
        raise MissingDependencyError(f"Plots need matplotlib: {install_hint('explore')}, or "
                                     "use --no-plots") from None
    matplotlib.use("Agg")      # files only, never a window
    import matplotlib.pyplot as plt
    return plt


#: A latency or LUT axis whose values span more than this factor is drawn on a log scale.
_LOG_SPAN = 10


def _log_if_wide(set_scale, field, values):
    """Draw a latency or LUT axis on a log scale when its values span more than _LOG_SPAN."""
    if field != "accuracy" and values and min(values) > 0 and \
            max(values) > _LOG_SPAN * min(values):
        set_scale("log")


def _label(record):
    return f"{record['config']['rows']}x{record['config']['cols']}"


def write_plots(records, out_dir):
    """Write the plots of ``records`` to ``out_dir``; return the paths written."""
    from pathlib import Path
    plt = _pyplot()
    built = any(r.get("latency_us") is not None for r in records)
    written = []
    boards = sorted({r["point"]["board"] for r in records})
    markers = dict(zip(boards, "osD^v<>"))
    for name, xf, yf, xlabel, ylabel in (PLOTS if built else _EMULATOR_PLOTS):
        points = [r for r in records if r.get(xf) is not None and r.get(yf) is not None]
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
        for board in boards:
            for on_front, colour in ((False, "tab:gray"), (True, "tab:red")):
                sel = [r for r in points if r["point"]["board"] == board
                       and bool(r.get("pareto")) == on_front]
                if sel:
                    ax.scatter([r[xf] for r in sel], [r[yf] for r in sel], c=colour,
                               marker=markers[board], s=48,
                               label=f"{board}{' (Pareto front)' if on_front else ''}")
        for r in points:
            ax.annotate(f"{_label(r)} int{r['point']['bits']}", (r[xf], r[yf]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        _log_if_wide(ax.set_xscale, xf, [r[xf] for r in points])
        _log_if_wide(ax.set_yscale, yf, [r[yf] for r in points])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if points:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no point has both figures", ha="center", transform=ax.transAxes)
        fig.tight_layout()
        path = Path(out_dir) / name
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
