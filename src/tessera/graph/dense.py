"""The dense-layer chain as a graph, and back (``QuantizedModel.to_graph``, ``to_dense_chain``).

A :class:`~tessera.quantize.QuantizedLayer` becomes a FULLY_CONNECTED operation (its clamp as
the fused activation) whose output tensor carries the requantization scale; a table layer adds
a LUT operation from that tensor to the layer's output. Every array and scale is kept bit for
bit, so the conversion is lossless both ways.
"""

from __future__ import annotations

import numpy as np

from .graph import Graph, Operation
from .tensor import QuantParams, Tensor

__all__ = ["graph_from_dense_chain", "dense_chain_from_graph"]


def _dtype(bits):
    return "int8" if bits <= 8 else "int16"


def graph_from_dense_chain(qmodel):
    """Return the :class:`~tessera.graph.QuantizedGraph` of a ``QuantizedModel``.

    Raises
    ------
    ValueError
        The layers mix requantization modes (a graph has one).
    """
    from .model import QuantizedGraph
    if qmodel.mode == "mixed":
        raise ValueError("The layers mix requantization modes; a graph has one mode")
    bits = qmodel.input_bits
    names = [layer.name for layer in qmodel.layers]
    unique = len(set(names)) == len(names) and "input" not in names
    current = Tensor("input", (qmodel.in_features,), _dtype(bits),
                     QuantParams(qmodel.input_scale, qmodel.input_zero_point, bits=bits))
    tensors, ops = [current], []
    for i, layer in enumerate(qmodel.layers):
        base = layer.name if unique else f"layer{i}"
        wq = QuantParams(layer.weight_scale, 0, bits=layer.weight_bits, axis=1)
        weight = Tensor(f"{base}.weight", layer.weight.shape, layer.weight.dtype.name, wq,
                        layer.weight)
        bias = Tensor(f"{base}.bias", layer.bias.shape, "int32", data=layer.bias)
        requant = QuantParams(layer.requant_scale, layer.requant_zero_point, bits=bits)
        lut = layer.activation == "lut"
        out = Tensor(f"{base}.lut_input" if lut else base, (layer.out_features,), _dtype(bits),
                     requant)
        tensors += [weight, bias, out]
        ops.append(Operation("FULLY_CONNECTED", [current.name, weight.name, bias.name],
                             [out.name], {"activation": layer.clamp_activation},
                             name=layer.name))
        if lut:
            table = Tensor(f"{base}.table", (256,), "int8", data=layer.lut)
            y = Tensor(base, (layer.out_features,), _dtype(bits),
                       QuantParams(layer.output_scale, layer.output_zero_point, bits=bits))
            tensors += [table, y]
            ops.append(Operation("LUT", [out.name, table.name], [y.name], name=layer.name))
            out = y
        current = out
    graph = Graph(tensors, ops, ["input"], [current.name], mode=qmodel.layers[0].mode,
                  name="dense chain")
    return QuantizedGraph(graph, info=qmodel.info)


def dense_chain_from_graph(qgraph):
    """Return the ``QuantizedModel`` of a graph made of FULLY_CONNECTED [+ LUT] operations.

    Raises
    ------
    ValueError
        An operation of another kind (named), a LUT not right after a FULLY_CONNECTED without
        a fused clamp, or a branch.
    """
    from ..quantize.model import QuantizedLayer, QuantizedModel
    g = qgraph.graph
    current = g.inputs[0]
    drafts = []
    for index, op in enumerate(g.ops):
        where = f"{g.describe(index)}"
        if op.inputs[0] != current:
            raise ValueError(f"{where} does not read the previous output {current!r}: the "
                             "graph is not a chain of dense layers")
        x, out = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
        if op.kind == "FULLY_CONNECTED":
            w, b = g.tensor(op.inputs[1]), op.inputs[2]
            n = w.shape[1]
            drafts.append(dict(
                name=op.name, weight=w.data,
                bias=np.zeros(n, np.int32) if b is None else g.tensor(b).data,
                input_scale=x.qparams.scalar_scale, input_zero_point=x.qparams.scalar_zero_point,
                weight_scale=np.broadcast_to(w.qparams.scale, (n,)).astype(np.float32),
                output_scale=out.qparams.scalar_scale,
                output_zero_point=out.qparams.scalar_zero_point, mode=g.mode,
                activation=op.attrs["activation"], input_bits=x.qparams.bits,
                weight_bits=w.qparams.bits))
        elif op.kind == "LUT" and drafts and drafts[-1]["activation"] == "none" \
                and "lut" not in drafts[-1]:
            draft = drafts[-1]
            draft.update(activation="lut", lut=g.tensor(op.inputs[1]).data,
                         lut_input_scale=draft["output_scale"],
                         lut_input_zero_point=draft["output_zero_point"],
                         output_scale=out.qparams.scalar_scale,
                         output_zero_point=out.qparams.scalar_zero_point)
        else:
            raise ValueError(f"{where} is not part of a dense-layer chain (FULLY_CONNECTED, "
                             "each optionally followed by one LUT)")
        current = op.outputs[0]
    if not drafts:
        raise ValueError("The graph has no FULLY_CONNECTED operation")
    return QuantizedModel([QuantizedLayer(**d) for d in drafts], info=qgraph.info)
