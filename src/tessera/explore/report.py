"""Reports of a sweep: a markdown table, a terminal table and the JSON document.

Every figure comes from a record (emulator counters, build reports); nothing is computed here
but formatting. A point that does not fit its part stays in the table with the reason.
"""

from __future__ import annotations

import json

__all__ = ["COLUMNS", "table_rows", "objectives_text", "summary_line", "format_markdown",
           "format_table", "write_reports"]

#: ``(heading, field, format)`` of the table columns.
COLUMNS = (
    ("point", "label", "{}"),
    ("accuracy", "accuracy", "{:.2%}"),
    ("cycles/inf", "cycles_per_inference", "{:.0f}"),
    ("latency cyc", "latency_cycles", "{:d}"),
    ("util", "utilisation", "{:.2f}"),
    ("LUT4", "lut4", "{:d}"),
    ("FF", "ff", "{:d}"),
    ("DSP", "dsp", "{:d}"),
    ("BRAM", "bram", "{:d}"),
    ("Fmax MHz", "fmax_mhz", "{:.1f}"),
    ("timing", "timing_met", None),
    ("latency µs", "latency_us", "{:.2f}"),
    ("inf/s", "throughput_ips", "{:,.0f}"),
    ("Pareto", "pareto", None),
)


_OBJECTIVE_NAMES = {"accuracy": "accuracy", "latency_us": "latency", "lut4": "LUTs",
                   "latency_cycles": "latency in cycles", "peak_macs_per_cycle": "MACs per cycle"}


def objectives_text(records) -> str:
    """Return the front's objectives as text, e.g. ``"accuracy ↑, latency ↓, LUTs ↓"``."""
    from .pareto import objectives_for
    return ", ".join(f"{_OBJECTIVE_NAMES.get(name, name)} {'↑' if sense == 'max' else '↓'}"
                     for name, sense in objectives_for(records))


def _cell(record, field, fmt):
    value = record.get(field)
    if field == "timing_met":
        return "" if value is None else ("met" if value else "NOT met")
    if field == "pareto":
        return "★" if value else ""
    if value is None:
        return "—" if record.get("status") == "does not fit" else ""
    return fmt.format(value)


def table_rows(records):
    """Return the table as a header tuple and one tuple of strings per record."""
    head = tuple(h for h, _, _ in COLUMNS)
    return head, [tuple(_cell(r, f, fmt) for _, f, fmt in COLUMNS) for r in records]


def _notes(records):
    notes = []
    for r in records:
        if r.get("status") not in (None, "ok"):
            reason = (r.get("reason") or "").splitlines()[0] if r.get("reason") else ""
            notes.append(f"{r['label']}: {r['status']}" + (f" — {reason}" if reason else ""))
    return notes


def summary_line(info) -> str:
    """Return what was swept on which data, e.g. for the top of ``explore.md``."""
    if info.get("quantized"):
        data = (f"{info['test_rows']} test rows" + ("" if info.get("labelled", True)
                                                     else " without labels (no accuracy)")
                if info["test_rows"] else "no data (no accuracy)")
        return (f"Model: {info['model']}: its width and mode are fixed, so only the boards and "
                f"array shapes are swept; {data}.")
    accuracy = info.get("float_accuracy")
    return (f"Model: {info['model']}; {info['test_rows']} test rows, "
            f"{info['calibration_rows']} calibration rows; requant mode {info['mode']}"
            + (f"; float accuracy {accuracy:.2%}." if accuracy is not None else "."))


def _latency_note(records, batch):
    built = any(r.get("fmax_mhz") for r in records)
    cnn = any(r.get("point", {}).get("cnn") for r in records)
    note = ("Cycles are the emulator's cycle model (bit-exact with the RTL counters); latency is "
            "one inference with the weights loaded" + (" and, on a CNN preset, the input "
                                                       "already on the device" if cnn else "")
            + f", throughput is batches of {batch} rows"
            + (" (one inference at a time on a CNN preset)" if cnn else "") + "; both at "
            + ("the achieved Fmax of the real build" if built else
               "each board's target clock (nothing was built)") + ".")
    if cnn:
        note += (" CNN points run on the boards' CNN presets in the emulator and are not built "
                 "(of the CNN presets only orangecrab-25f-cnn meets timing, #15).")
    return note


def format_markdown(result) -> str:
    """Return the sweep as a markdown section: summary, table, Pareto front, notes."""
    info, records = result.info, result.records
    head, rows = table_rows(records)
    lines = [summary_line(info), "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    front = [r["label"] for r in records if r.get("pareto")]
    lines += ["", f"Pareto front ({objectives_text(records)}): "
              + (", ".join(front) if front else "empty (no point has every figure)") + "."]
    notes = _notes(records)
    if notes:
        lines += ["", "Points without a bitstream:", ""] + [f"- {n}" for n in notes]
    lines += ["", _latency_note(records, info["batch"])]
    return "\n".join(lines) + "\n"


def format_table(result) -> str:
    """Return the sweep as an aligned terminal table with a summary line."""
    head, rows = table_rows(result.records)
    widths = [max(len(c) for c in column) for column in zip(head, *rows)]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths)))
    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    lines += [f"  {n}" for n in _notes(result.records)]
    lines.append(summary_line(result.info))
    lines.append(_latency_note(result.records, result.info["batch"]))
    lines.append(f"{len(result.records)} points: {result.evaluated} evaluated, "
                 f"{result.cached} from the cache ({result.info['cache']}), "
                 f"{result.elapsed_s:.0f} s; ★ = Pareto front")
    return "\n".join(lines)


def write_reports(result, out_dir, *, plots=True):
    """Write ``explore.json``, ``explore.md`` and (optionally) the PNG plots to ``out_dir``.

    Returns the list of files written.
    """
    from pathlib import Path
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "explore.json", out_dir / "explore.md"]
    with open(written[0], "w", encoding="utf-8") as f:
        json.dump(result.to_dict(), f, indent=1, sort_keys=True)
        f.write("\n")
    written[1].write_text("# Design-space sweep\n\n" + format_markdown(result), encoding="utf-8")
    if plots:
        from .plots import write_plots
        written += write_plots(result.records, out_dir)
    return written
