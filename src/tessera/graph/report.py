"""The per-operation report of a graph: shapes, MACs, weight and activation bytes, peak memory.

Used by :meth:`tessera.graph.QuantizedGraph.summary` and ``tessera info MODEL``. Figures are per
sample (batch 1). The peak live activation memory follows docs/graph.md (Reports).
"""

from __future__ import annotations

import numpy as np

__all__ = ["op_rows", "totals", "summary"]


def _shape(shape):
    return "x".join(str(d) for d in shape) or "scalar"


def _short(name, width=40):
    """Return ``name`` cut to ``width`` characters (TFLite joins fused op names with ';')."""
    name = name.split(";")[0]
    return name if len(name) <= width else name[:width // 2 - 1] + "…" + name[-(width // 2):]


def op_rows(graph):
    """Return one dict per operation: index, kind, name, shapes, macs, weight/activation bytes."""
    rows = []
    for index, op in enumerate(graph.ops):
        ins = [graph.tensor(n) for n in op.inputs if n is not None]
        out = graph.tensor(op.outputs[0])
        shape = out.shape
        macs = op.spec.macs(op.attrs, [None if n is None else graph.tensor(n)
                                       for n in op.inputs], shape) if op.spec.macs else 0
        rows.append({
            "index": index, "kind": op.kind, "name": op.name,
            "inputs": [t.shape for t in ins if not t.is_constant],
            "weights": [t.shape for t in ins if t.is_constant],
            "output": shape, "macs": int(macs),
            "weight_bytes": sum(t.nbytes for t in ins if t.is_constant),
            "activation_bytes": out.nbytes,
            "scale": float(out.qparams.scalar_scale),
            "zero_point": out.qparams.scalar_zero_point,
            "activation": op.attrs.get("activation", "-"),
        })
    return rows


def totals(graph):
    """Return ``{"macs", "weight_bytes", "activation_bytes", "peak_bytes", "peak_op"}``."""
    rows = op_rows(graph)
    live, peak = graph.liveness()
    return {"macs": sum(r["macs"] for r in rows),
            "weight_bytes": sum(t.nbytes for t in graph.tensors.values() if t.is_constant),
            "activation_bytes": sum(r["activation_bytes"] for r in rows),
            "peak_bytes": int(peak),
            "peak_op": int(np.argmax(live)) if live else None}


def summary(qgraph):
    """Return the text report of a :class:`~tessera.graph.QuantizedGraph`."""
    g = qgraph.graph
    x, y = qgraph.input_tensor, qgraph.output_tensor
    layout = ("NHWC" if qgraph.input_layout == "NHWC" else
              "NCHW (predict() takes and returns NCHW; the graph and the shapes below are NHWC)")
    head = [f"QuantizedGraph {g.name!r}: {len(g.ops)} operations, mode {qgraph.mode!r}",
            f"input {x.name!r} [{_shape(qgraph.input_shape)}] {x.dtype} scale "
            f"{float(qgraph.input_scale):.6g} zp {qgraph.input_zero_point}, layout {layout}",
            f"output {y.name!r} [{_shape(qgraph.output_shape)}] {y.dtype} scale "
            f"{float(qgraph.output_scale):.6g} zp {qgraph.output_zero_point}"]
    if qgraph.info:
        head.append(", ".join(f"{key} {value}" for key, value in qgraph.info.items()))
    columns = ("#", "op", "output", "in shape", "weights", "out shape", "act", "MACs",
               "weight B", "act B", "out scale", "zp")
    rows = [(str(r["index"]), r["kind"], _short(r["name"]),
             " ".join(_shape(s) for s in r["inputs"]),
             " ".join(_shape(s) for s in r["weights"]) or "-", _shape(r["output"]),
             r["activation"], f"{r['macs']:,}", f"{r['weight_bytes']:,}",
             f"{r['activation_bytes']:,}", f"{r['scale']:.4g}", str(r["zero_point"]))
            for r in op_rows(g)]
    widths = [max(len(c), *(len(r[j]) for r in rows)) for j, c in enumerate(columns)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa
    table = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in rows]
    t = totals(g)
    peak = (f"peak live activation memory {t['peak_bytes']:,} B (batch 1, during operation "
            f"{t['peak_op']}: {g.ops[t['peak_op']].kind})") if t["peak_op"] is not None else ""
    foot = [f"total: {t['macs']:,} MACs, {t['weight_bytes']:,} B of weights (all constants), "
            f"{t['activation_bytes']:,} B of activations written; {peak}"]
    return "\n".join(head + table + foot)
