"""A graph as the entries of a model file, format version 2 (docs/graph.md, Files).

:mod:`tessera.quantize.serialize` owns the file (the ``.npz`` archive, the safe reader, the
format name and version check); this module says what a graph stores in it: the metadata
(tensors, operations, attributes as JSON) and, per tensor ``i``, ``t{i}.scale`` (float32,
quantized tensors) and ``t{i}.data`` (constants). :func:`expected_entries` gives the dtype and
exact shape of every entry from the metadata, so the reader refuses anything else before it
decompresses a byte.
"""

from __future__ import annotations

import numpy as np

from .graph import Graph, Operation
from .model import QuantizedGraph
from .tensor import QuantParams, Tensor

__all__ = ["GRAPH_KIND", "graph_entries", "expected_entries", "graph_from_entries"]

#: The ``kind`` of a graph file's metadata (version 1 files hold dense chains, without it).
GRAPH_KIND = "graph"

_TENSOR_KEYS = ("name", "shape", "dtype", "constant", "quantized")
_OP_KEYS = ("kind", "inputs", "outputs", "attrs")


def _json(value):
    """Return ``value`` with tuples as lists and numpy scalars as Python numbers."""
    if isinstance(value, (tuple, list)):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def graph_entries(qgraph):
    """Return ``(meta, arrays)`` of a :class:`QuantizedGraph` (``meta`` without format/version)."""
    g = qgraph.graph
    tensors, arrays = [], {}
    for i, t in enumerate(g.tensors.values()):
        entry = {"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
                 "constant": t.is_constant, "quantized": t.qparams is not None}
        if t.qparams is not None:
            q = t.qparams
            entry.update(zero_point=q.zero_point.tolist(), bits=q.bits, axis=q.axis)
            arrays[f"t{i}.scale"] = q.scale
        if t.is_constant:
            arrays[f"t{i}.data"] = t.data
        tensors.append(entry)
    ops = [{"kind": op.kind, "name": op.name, "inputs": list(op.inputs),
            "outputs": list(op.outputs), "attrs": {k: _json(v) for k, v in op.attrs.items()}}
           for op in g.ops]
    meta = {"kind": GRAPH_KIND, "name": g.name, "mode": g.mode, "input_layout": g.input_layout,
            "inputs": list(g.inputs), "outputs": list(g.outputs), "info": qgraph.info,
            "tensors": tensors, "ops": ops}
    return meta, arrays


def _shape(entry, i):
    shape = entry.get("shape")
    if not isinstance(shape, list) or any(isinstance(d, bool) or not isinstance(d, int)
                                          or d <= 0 for d in shape):
        raise ValueError(f"tensor {i} has shape {shape!r}, not a list of positive integers")
    return tuple(shape)


def expected_entries(meta):
    """Return ``{entry: (dtype, shape)}`` of every array a graph file's metadata defines.

    Raises
    ------
    ValueError
        The metadata is not a graph's (missing keys, bad shapes or dtypes).
    """
    tensors, ops = meta.get("tensors"), meta.get("ops")
    if not isinstance(tensors, list) or not tensors or not isinstance(ops, list):
        raise ValueError("its metadata lists no tensors or operations")
    expected = {"meta": (np.uint8, (None,))}
    for i, entry in enumerate(tensors):
        if not isinstance(entry, dict) or any(key not in entry for key in _TENSOR_KEYS):
            raise ValueError(f"the metadata of tensor {i} is not an object with the keys "
                             f"{', '.join(_TENSOR_KEYS)}")
        if entry["dtype"] not in ("int8", "int16", "int32"):
            raise ValueError(f"tensor {i} has dtype {entry['dtype']!r}")
        shape = _shape(entry, i)
        if entry["quantized"]:
            axis = entry.get("axis")
            channels = (shape[axis],) if isinstance(axis, int) and -len(shape) <= axis \
                < len(shape) else ()
            expected[f"t{i}.scale"] = (np.float32, channels)
        if entry["constant"]:
            expected[f"t{i}.data"] = (np.dtype(entry["dtype"]), shape)
    for i, entry in enumerate(ops):
        if not isinstance(entry, dict) or any(key not in entry for key in _OP_KEYS):
            raise ValueError(f"the metadata of operation {i} is not an object with the keys "
                             f"{', '.join(_OP_KEYS)}")
    return expected


def graph_from_entries(meta, arrays):
    """Return the :class:`QuantizedGraph` of a file's metadata and arrays (validated anew)."""
    tensors = []
    for i, entry in enumerate(meta["tensors"]):
        q = None
        if entry["quantized"]:
            q = QuantParams(arrays[f"t{i}.scale"], np.asarray(entry["zero_point"], np.int64),
                            bits=entry["bits"], axis=entry["axis"])
        data = arrays[f"t{i}.data"] if entry["constant"] else None
        tensors.append(Tensor(entry["name"], entry["shape"], entry["dtype"], q, data))
    ops = [Operation(e["kind"], e["inputs"], e["outputs"], e["attrs"], name=e.get("name"))
           for e in meta["ops"]]
    graph = Graph(tensors, ops, meta["inputs"], meta["outputs"], mode=meta["mode"],
                  input_layout=meta.get("input_layout", "NHWC"), name=meta.get("name", "graph"))
    return QuantizedGraph(graph, info=meta.get("info"))
