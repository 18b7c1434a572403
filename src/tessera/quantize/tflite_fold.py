"""Fold the constant shape arithmetic TFLite converters write before a ``RESHAPE``.

A Keras ``Flatten`` (or ``Reshape``) with a dynamic batch converts to::

    SHAPE(x) -> STRIDED_SLICE [0:1] -> PACK [batch, -1] -> RESHAPE(x, shape)

The new shape only depends on the static shape of ``x`` and on constants, so it is computed here
at import (``SHAPE``, ``STRIDED_SLICE``, ``PACK``, ``CONCATENATION`` of constants) and the
operators that computed it are dropped. The folded shape is checked against the ``RESHAPE``'s
output tensor for two batch sizes, so a shape that does not follow the batch is refused rather
than trusted. An operator of that kind which reads a computed tensor, or a folded value used by
anything but a ``RESHAPE``'s shape input, is refused naming the operator.
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedModelError

__all__ = ["SHAPE_OPS", "fold_shape_subgraphs"]

#: Operators folded when every input is a constant or a static shape.
SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK", "CONCATENATION")
#: Two batch sizes: a folded shape must follow the batch in both.
_BATCHES = (1, 3)
_INT_TYPES = {"INT32": np.int32, "INT64": np.int64}


def _is_constant(r, index):
    t = r.tensor(index)
    buffers = r.model.buffers or []
    buf = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
    return buf is not None and ((buf.data is not None and len(buf.data) > 0)
                                or (buf.offset is not None and buf.offset > 1))


def _static_shape(r, index, batch):
    t = r.tensor(index)
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    signature = [int(d) for d in t.shapeSignature] if t.shapeSignature is not None else shape
    if any(d < 0 for d in signature[1:]) or any(d < 0 for d in shape):
        raise UnsupportedModelError(
            f"{r.name}: tensor {r.tname(index)!r} has a dynamic shape {signature} beyond the "
            "batch; Tessera folds static shapes only")
    return [batch if i == 0 and signature and signature[0] < 0 else d
            for i, d in enumerate(shape)]


def _strided_slice(value, begin, end, strides, opts, where):
    if value.ndim != 1 or begin.size != 1 or end.size != 1 or strides.size != 1:
        raise UnsupportedModelError(f"{where} slices a {value.ndim}-D shape with "
                                    f"{begin.size} axes; Tessera folds 1-D slices only")
    if opts is not None and (opts.ellipsisMask or opts.newAxisMask or opts.offset):
        raise UnsupportedModelError(f"{where} uses an ellipsis, new-axis or offset slice; "
                                    "Tessera folds plain [begin:end:stride] slices")
    b = None if opts is not None and opts.beginMask & 1 else int(begin[0])
    e = None if opts is not None and opts.endMask & 1 else int(end[0])
    if opts is not None and opts.shrinkAxisMask & 1:
        return np.asarray(value[b])
    return value[b:e:int(strides[0])]


class _Folder:
    """Evaluate the shape operators of one subgraph for one batch size."""

    def __init__(self, r, batch):
        self.r, self.batch, self.values = r, batch, {}

    def value(self, index, where):
        if index in self.values:
            return self.values[index]
        r = self.r
        kind = r.type_of(index)
        if kind not in _INT_TYPES or not _is_constant(r, index):
            raise UnsupportedModelError(
                f"{where} is not constant-foldable: its input {r.tname(index)!r} is computed "
                "from the model input; Tessera folds " + ", ".join(SHAPE_OPS) +
                " of integer constants and static shapes only")
        return r.constant(index, _INT_TYPES[kind], where)

    def fold(self, i, op, kind):
        r = self.r
        where = f"{r.name}: {r.describe(i, op)}"
        opts = op.builtinOptions
        if kind == "SHAPE":
            value = np.asarray(_static_shape(r, op.inputs[0], self.batch), np.int64)
        elif kind == "STRIDED_SLICE":
            value = _strided_slice(*(self.value(t, where) for t in op.inputs[:4]), opts, where)
        elif kind == "PACK":
            axis = int(opts.axis) if opts is not None else 0
            value = np.stack([self.value(t, where) for t in op.inputs], axis=axis)
        else:
            axis = int(opts.axis) if opts is not None else 0
            value = np.concatenate([np.atleast_1d(self.value(t, where)) for t in op.inputs],
                                   axis=axis)
        self.values[int(op.outputs[0])] = value


def _foldable(r, op, kind):
    """Return whether ``op`` is shape arithmetic (a CONCATENATION only of integer constants)."""
    if kind != "CONCATENATION":
        return kind in SHAPE_OPS
    return all(r.type_of(t) in _INT_TYPES for t in op.inputs) and \
        r.type_of(op.outputs[0]) in _INT_TYPES


def _resolved(target, out_shape):
    target = [int(d) for d in target]
    if target.count(-1) == 1:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = int(np.prod(out_shape)) // known if known else -1
    return target


def fold_shape_subgraphs(r):
    """Return the indices of operators of ``r`` that fold into constant ``RESHAPE`` shapes.

    Parameters
    ----------
    r : tessera.quantize.tflite_reader.TFLiteReader
        The parsed flatbuffer; its operators have been checked for indices in range.

    Raises
    ------
    UnsupportedModelError
        A shape operator reads a computed tensor, a folded value feeds anything but a
        ``RESHAPE``'s shape input, or the folded shape does not give the ``RESHAPE``'s output
        with the batch leading (each named with the operator's index, kind and output).
    """
    ops = list(r.graph.operators or [])
    folded = [i for i, op in enumerate(ops) if _foldable(r, op, r.op_names[op.opcodeIndex])]
    if not folded:
        return set()
    produced = {int(ops[i].outputs[0]): i for i in folded}
    folders = [_Folder(r, batch) for batch in _BATCHES]
    for i in folded:
        for folder in folders:
            try:
                folder.fold(i, ops[i], r.op_names[ops[i].opcodeIndex])
            except (IndexError, ValueError) as exc:
                if isinstance(exc, UnsupportedModelError):
                    raise
                raise ValueError(f"{r.name}: {r.describe(i, ops[i])} cannot be computed from "
                                 f"its constant inputs ({exc}); the file is corrupt") from None
    for j, op in enumerate(ops):
        kind = r.op_names[op.opcodeIndex]
        for slot, index in enumerate(op.inputs if op.inputs is not None else []):
            if int(index) not in produced or j in produced.values():
                continue
            if kind != "RESHAPE" or slot != 1:
                raise UnsupportedModelError(
                    f"{r.name}: {r.describe(j, op)} takes the folded shape value "
                    f"{r.tname(index)!r}; Tessera folds shape arithmetic into RESHAPE only")
            for folder in folders:
                out = _static_shape(r, op.outputs[0], folder.batch)
                target = _resolved(folder.values[int(index)].ravel(), out)
                if target != out:
                    raise UnsupportedModelError(
                        f"{r.name}: {r.describe(j, op)} reshapes to {target} at batch "
                        f"{folder.batch}, not its output shape {out}; Tessera folds shapes "
                        "that keep the batch leading")
    if any(int(index) in produced for index in r.graph.outputs):
        raise UnsupportedModelError(f"{r.name}: the model output is a folded shape value; "
                                    "Tessera imports int8 tensor outputs")
    return _only_measured(r, ops, set(folded))


def _only_measured(r, ops, dropped):
    """Add to ``dropped`` the operators whose outputs only dropped operators read.

    The converter may reroute a RESHAPE chain past a tensor that is left read by a SHAPE alone
    (Reshape then Flatten); once the SHAPE is folded, nothing reads that tensor's values.
    """
    outputs = {int(t) for t in r.graph.outputs}
    while True:
        readers = {}
        for j, op in enumerate(ops):
            for index in op.inputs if op.inputs is not None else []:
                readers.setdefault(int(index), set()).add(j)
        dead = {j for j, op in enumerate(ops) if j not in dropped and all(
            int(t) not in outputs and readers.get(int(t)) and readers[int(t)] <= dropped
            for t in op.outputs)}
        if not dead:
            return dropped
        dropped |= dead
