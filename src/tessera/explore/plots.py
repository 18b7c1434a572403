"""PNG plots of a sweep (matplotlib, imported only here; ``pip install 'tessera-fpga[explore]'``).

Made to be read at a glance: one colour per board, one marker per operand width; the Pareto
front drawn solid and labelled (array shape, and width when the sweep has several), every other
point faint and unlabelled; labels are placed where they overlap neither each other nor a
point (see :mod:`tessera.explore.labels`). Latency is in µs at each board's clock: the achieved
Fmax of the build, or the board's target clock when nothing was built (records from before
that have cycles only and are plotted in cycles). A latency or LUT axis spanning more than a
factor of ten is logarithmic.

The plots: accuracy vs latency (when the data has labels), ``resources_vs_latency.png`` (one
panel per resource: LUT4, multipliers, block RAMs from the builds; without builds the MAC
count and the on-chip buffer bytes of the configuration), and with builds accuracy vs LUTs and
latency vs LUTs. Points that do not fit have no latency or resources and are left out.
"""

from __future__ import annotations

__all__ = ["PLOTS", "write_plots", "resource_panels"]

#: ``(file name, x field, y field, x label, y label)`` of the pair plots with builds.
PLOTS = (
    ("accuracy_vs_latency.png", "latency_us", "accuracy", "latency per inference (µs)",
     "accuracy"),
    ("accuracy_vs_luts.png", "lut4", "accuracy", "LUT4", "accuracy"),
    ("latency_vs_luts.png", "lut4", "latency_us", "LUT4", "latency per inference (µs)"),
)

_RESOURCES_PNG = "resources_vs_latency.png"
_MARKERS = {4: "^", 8: "o", 16: "s"}


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


def _buffer_kib(record):
    from tessera.spec import AcceleratorConfig
    c = AcceleratorConfig.from_dict(record["config"])
    return (c.act_depth * c.act_entry_bytes + c.weight_depth * c.weight_entry_bytes
            + c.param_depth * c.param_entry_bytes) / 1024


def _macs(record):
    return record["config"]["rows"] * record["config"]["cols"]


def resource_panels(records):
    """Return ``(y label, value function)`` of each panel of the resources plot."""
    if any(r.get("lut4") is not None for r in records):
        return [("LUT4", lambda r: r.get("lut4")), ("DSP (multipliers)", lambda r: r.get("dsp")),
                ("block RAMs", lambda r: r.get("bram"))]
    return [("MACs per cycle (multipliers)", _macs),
            ("on-chip buffers (KiB, configured)", _buffer_kib)]


def _latency_field(records):
    if any(r.get("latency_us") is not None for r in records):
        return "latency_us", "latency per inference (µs)"
    return "latency_cycles", "latency per inference (cycles)"


def _label(record, widths):
    text = f"{record['config']['rows']}x{record['config']['cols']}"
    return text + (f" int{record['point']['bits']}" if widths > 1 else "")


def _scatter(ax, points, xs, ys, boards, colours):
    """Draw ``points`` at ``xs, ys``; the front solid, the rest faint; return the front."""
    front = []
    for r, x, y in zip(points, xs, ys):
        colour, marker = colours[r["point"]["board"]], _MARKERS.get(r["point"]["bits"], "o")
        if r.get("pareto"):
            ax.scatter([x], [y], s=60, marker=marker, c=[colour], edgecolors="black",
                       linewidths=0.8, zorder=3)
            front.append((r, x, y))
        else:
            ax.scatter([x], [y], s=36, marker=marker, facecolors="none", edgecolors=[colour],
                       alpha=0.45, zorder=2)
    return front


def _legend(ax, boards, colours, widths):
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], ls="", marker="o", color=colours[b], label=b) for b in boards]
    if len(widths) > 1:
        handles += [Line2D([], [], ls="", marker=_MARKERS.get(w, "o"), color="gray",
                           label=f"int{w}") for w in widths]
    handles += [Line2D([], [], ls="", marker="o", color="gray", markeredgecolor="black",
                       label="Pareto front (labelled)"),
                Line2D([], [], ls="", marker="o", markerfacecolor="none", color="gray",
                       alpha=0.45, label="dominated")]
    ax.legend(handles=handles, fontsize=7, loc="best", framealpha=0.85)


def _panel(ax, points, xf, value, boards, colours):
    xs = [r[xf] for r in points]
    ys = [value(r) for r in points]
    keep = [i for i, (x, y) in enumerate(zip(xs, ys)) if x is not None and y is not None]
    points, xs, ys = [points[i] for i in keep], [xs[i] for i in keep], [ys[i] for i in keep]
    front = _scatter(ax, points, xs, ys, boards, colours)
    return points, xs, ys, front


def write_plots(records, out_dir):
    """Write the plots of ``records`` to ``out_dir``; return the paths written."""
    from pathlib import Path

    from .labels import place_labels
    plt = _pyplot()
    boards = sorted({r["point"]["board"] for r in records})
    widths = sorted({r["point"]["bits"] for r in records})
    colours = {b: f"C{i}" for i, b in enumerate(boards)}
    latency, latency_label = _latency_field(records)
    built = any(r.get("lut4") is not None for r in records)
    pairs = [(n, latency if x == "latency_us" else x, y, latency_label if x == "latency_us"
              else xl, yl) for n, x, y, xl, yl in (PLOTS if built else PLOTS[:1])]
    if not any(r.get("accuracy") is not None for r in records):
        pairs = [p for p in pairs if "accuracy" not in (p[1], p[2])]
    written = []
    for name, xf, yf, xlabel, ylabel in pairs:
        fig, ax = plt.subplots(figsize=(7.2, 5.0), dpi=110)
        points, xs, ys, front = _panel(ax, records, xf, lambda r, f=yf: r.get(f), boards,
                                       colours)
        _finish(ax, xf, yf, xs, ys, xlabel, ylabel)
        _legend(ax, boards, colours, widths)
        _save(fig, plt, ax, [(ax, front)], len(widths), Path(out_dir) / name, place_labels,
              empty=not points)
        written.append(Path(out_dir) / name)
    panels = resource_panels(records)
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.2, 2.9 * len(panels)), dpi=110,
                             sharex=True, squeeze=False)
    fronts, any_points = [], False
    for ax, (ylabel, value) in zip(axes[:, 0], panels):
        points, xs, ys, front = _panel(ax, records, latency, value, boards, colours)
        any_points = any_points or bool(points)
        _finish(ax, latency, "resource", xs, ys, latency_label if ax is axes[-1, 0] else "",
                ylabel)
        fronts.append((ax, front))
    _legend(axes[0, 0], boards, colours, widths)
    axes[0, 0].set_title("resources vs latency", fontsize=9)
    _save(fig, plt, axes[0, 0], fronts, len(widths), Path(out_dir) / _RESOURCES_PNG,
          place_labels, empty=not any_points)
    written.append(Path(out_dir) / _RESOURCES_PNG)
    return written


def _finish(ax, xf, yf, xs, ys, xlabel, ylabel):
    _log_if_wide(ax.set_xscale, xf, xs)
    _log_if_wide(ax.set_yscale, yf, ys)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3, which="both")
    ax.margins(0.08)


def _save(fig, plt, ax, fronts, widths, path, place_labels, *, empty):
    if empty:
        ax.text(0.5, 0.5, "no point has both figures", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    for panel, front in fronts:
        place_labels(panel, [(x, y, _label(r, widths)) for r, x, y in front])
    fig.savefig(path)
    plt.close(fig)
