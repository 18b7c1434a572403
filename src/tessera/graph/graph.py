"""The graph: operations over named tensors in topological order, validated on construction.

See docs/graph.md. Every error names the operation (index, kind, output tensor) and the tensor at
fault, and says what to change.
"""

from __future__ import annotations

import numpy as np

from .ops import OPS
from .tensor import Tensor

__all__ = ["LAYOUTS", "Operation", "Graph"]

#: Input layouts a graph can record (the layout of its source; the graph itself is NHWC).
LAYOUTS = ("NHWC", "NCHW")


class Operation:
    """One operation: a kind of :data:`~tessera.graph.OPS`, tensor names in and out, attributes.

    Parameters
    ----------
    kind : str
    inputs : sequence of str or None
        Tensor names; None for an absent optional operand (a missing bias).
    outputs : sequence of str
        One tensor name.
    attrs : dict, optional
        Checked against the kind's schema when the :class:`Graph` is built (defaults filled in).
    name : str, optional
        For messages; defaults to the output tensor's name.
    """

    __slots__ = ("kind", "inputs", "outputs", "attrs", "name")

    def __init__(self, kind, inputs, outputs, attrs=None, name=None):
        self.kind = kind
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.attrs = dict(attrs or {})
        self.name = name or (self.outputs[0] if self.outputs else kind)

    @property
    def spec(self):
        """The :class:`~tessera.graph.ops.OpSpec` of this kind."""
        return OPS[self.kind]

    def __repr__(self):
        return f"<Operation {self.kind} {list(self.inputs)} -> {list(self.outputs)}>"


def _activation_dtype(bits):
    return "int8" if bits <= 8 else "int16"


class Graph:
    """A validated DAG of :class:`Operation` over :class:`~tessera.graph.Tensor` objects.

    Parameters
    ----------
    tensors : sequence of Tensor
    ops : sequence of Operation
        In topological order.
    inputs, outputs : sequence of str
        Names of the graph's input and output tensors (activations).
    mode : str
        Requantization mode (``tessera.numerics.modes``).
    input_layout : {"NHWC", "NCHW"}
        The layout of the source model's input (the graph is NHWC).
    name : str

    Raises
    ------
    ValueError
        The graph is inconsistent (the message names the operation and tensor).
    """

    def __init__(self, tensors, ops, inputs, outputs, *, mode, input_layout="NHWC",
                 name="graph"):
        from ..numerics.modes import get_mode
        self.mode = get_mode(mode).name
        if input_layout not in LAYOUTS:
            raise ValueError(f"Input layout must be one of {LAYOUTS}, not {input_layout!r}")
        self.input_layout, self.name = input_layout, str(name)
        self.tensors = {}
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"tensors must be Tensor objects, not {type(t).__name__}")
            if t.name in self.tensors:
                raise ValueError(f"Graph {self.name!r}: two tensors are named {t.name!r}")
            self.tensors[t.name] = t
        self.inputs, self.outputs = tuple(inputs), tuple(outputs)
        if not self.inputs or not self.outputs:
            raise ValueError(f"Graph {self.name!r} needs at least one input and one output")
        self.ops = tuple(ops)
        self._producers, self._consumers = {}, {}
        self._validate()

    def describe(self, index):
        """Return ``"operation i (KIND, output 'name')"`` for messages."""
        op = self.ops[index]
        out = op.outputs[0] if op.outputs else "?"
        return f"operation {index} ({op.kind}, output {out!r})"

    def tensor(self, name):
        """Return the tensor called ``name`` (KeyError naming it if there is none)."""
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"Graph {self.name!r} has no tensor {name!r}") from None

    def producer(self, name):
        """Return the index of the operation producing ``name`` (None for inputs, constants)."""
        return self._producers.get(name)

    def consumers(self, name):
        """Return the indices of the operations reading ``name``, in order."""
        return tuple(self._consumers.get(name, ()))

    def _check_input(self, where, op, i, name, available):
        spec = op.spec
        role = spec.operands[min(i, len(spec.operands) - 1)]
        if name is None:
            if role not in spec.optional:
                raise ValueError(f"{where}: operand {role!r} is required")
            return None
        if name not in self.tensors:
            raise ValueError(f"{where}: input {name!r} is not a tensor of the graph (dangling)")
        t = self.tensors[name]
        if role in spec.constants:
            if not t.is_constant:
                raise ValueError(f"{where}: {role} {name!r} must be a constant tensor")
            if role == "weight":
                self._check_weight(where, spec, t)
        elif t.is_constant:
            raise ValueError(f"{where}: operand {role!r} reads constant {name!r}; Tessera "
                             "needs it to be an activation")
        elif name not in available:
            later = any(name in o.outputs for o in self.ops)
            raise ValueError(f"{where}: input {name!r} is used before it is produced ("
                             + ("the operations are not in topological order, or the graph "
                                "has a cycle)" if later else
                                "no operation produces it and it is not a graph input)"))
        else:
            if t.qparams.per_channel:
                raise ValueError(f"{where}: activation {name!r} is quantized per channel; "
                                 "activations take one scale and zero point")
            if t.dtype != _activation_dtype(t.qparams.bits):
                raise ValueError(f"{where}: activation {name!r} is {t.dtype} but has "
                                 f"{t.qparams.bits}-bit quantization")
        return t

    @staticmethod
    def _check_weight(where, spec, w):
        q = w.qparams
        if q is None or w.dtype not in ("int8", "int16"):
            raise ValueError(f"{where}: weight {w.name!r} must be quantized int8/int16, not "
                             f"{w.dtype} with {q}")
        if np.any(q.zero_point != 0):
            raise ValueError(f"{where}: weight {w.name!r} has non-zero zero points; weights "
                             "are symmetric")
        if q.per_channel and q.axis % len(w.shape) != spec.weight_axis:
            raise ValueError(f"{where}: weight {w.name!r} is quantized per channel along axis "
                             f"{q.axis}, not the output-channel axis {spec.weight_axis}")

    def _validate(self):
        for name in self.inputs + self.outputs:
            if name not in self.tensors or self.tensors[name].is_constant:
                raise ValueError(f"Graph {self.name!r}: {name!r} must be an activation tensor "
                                 "of the graph to be an input or output")
        available = set(self.inputs)
        for index, op in enumerate(self.ops):
            where = f"Graph {self.name!r}: {self.describe(index)}"
            if not isinstance(op, Operation):
                raise TypeError(f"Graph {self.name!r}: ops must be Operation objects")
            if op.kind not in OPS:
                raise ValueError(f"{where}: unknown kind {op.kind!r}; the graph has "
                                 f"{', '.join(OPS)}")
            spec = op.spec
            op.attrs = spec.check_attrs(op.attrs, where)
            names = list(op.inputs)
            if spec.variadic:
                if not names:
                    raise ValueError(f"{where}: needs at least one input")
            else:
                names += [None] * (len(spec.operands) - len(names))
                if len(names) != len(spec.operands):
                    raise ValueError(f"{where}: takes {len(spec.operands)} inputs "
                                     f"({', '.join(spec.operands)}), not {len(op.inputs)}")
            op.inputs = tuple(names)
            ins = [self._check_input(where, op, i, n, available) for i, n in enumerate(names)]
            if len(op.outputs) != 1:
                raise ValueError(f"{where}: has {len(op.outputs)} outputs, not one")
            out_name = op.outputs[0]
            if out_name not in self.tensors or self.tensors[out_name].is_constant:
                raise ValueError(f"{where}: output {out_name!r} must be an activation tensor "
                                 "of the graph")
            if out_name in available:
                raise ValueError(f"{where}: output {out_name!r} is already produced (by an "
                                 "earlier operation or as a graph input)")
            out = self.tensors[out_name]
            try:
                shape = tuple(spec.infer(op.attrs, ins, out))
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if out.shape != shape:
                raise ValueError(f"{where}: output {out_name!r} has shape {out.shape}, the "
                                 f"operation produces {shape}")
            if out.dtype != _activation_dtype(out.qparams.bits) or out.qparams.per_channel:
                raise ValueError(f"{where}: output {out_name!r} must be a per-tensor "
                                 f"{_activation_dtype(out.qparams.bits)} activation")
            for name in names:
                if name is not None:
                    self._consumers.setdefault(name, []).append(index)
            self._producers[out_name] = index
            available.add(out_name)
        for name, t in self.tensors.items():
            if name not in available and not t.is_constant:
                raise ValueError(f"Graph {self.name!r}: tensor {name!r} is dangling (no "
                                 "operation produces it and it is not a graph input)")
            if name not in self._consumers and name not in self.outputs:
                what = "constant" if t.is_constant else "tensor"
                raise ValueError(f"Graph {self.name!r}: {what} {name!r} is not used by any "
                                 "operation nor a graph output; remove it")

    def liveness(self):
        """Return ``(live_bytes, peak)``: live activation bytes while each op runs, batch 1.

        A tensor is live from its producer (graph inputs: from the start) to its last consumer
        (graph outputs: to the end); RESHAPE outputs count as copies.
        """
        last = {name: max(uses) for name, uses in self._consumers.items()}
        end = len(self.ops)
        for name in self.outputs:
            last[name] = end
        live = {name: self.tensors[name].nbytes for name in self.inputs}
        per_op = []
        for index, op in enumerate(self.ops):
            out = op.outputs[0]
            live[out] = self.tensors[out].nbytes
            per_op.append(sum(live.values()))
            for name in list(live):
                if last.get(name, -1) <= index:
                    del live[name]
        return per_op, max(per_op, default=sum(self.tensors[n].nbytes for n in self.inputs))

    def execute(self, feeds, *, keep=None):
        """Return the activations (name -> array ``[B, *shape]``) for the input arrays.

        ``feeds`` maps each graph input name to its int array (validated by the caller).
        ``keep`` None keeps every activation; a set of names keeps only those (and frees the
        others after their last use, so a large batch needs only the live tensors' memory).
        """
        values = dict(feeds)
        last = {name: max(uses) for name, uses in self._consumers.items()}
        for index, op in enumerate(self.ops):
            ins = [None if n is None else self.tensors[n] for n in op.inputs]
            arrays = [None if t is None else (t.data if t.is_constant else values[t.name])
                      for t in ins]
            out = self.tensors[op.outputs[0]]
            values[out.name] = op.spec.run(self.mode, op.attrs, arrays, ins, out)
            if keep is not None:
                for name in {n for n in op.inputs if n is not None} - set(keep):
                    if last.get(name) == index:
                        values.pop(name, None)
        return values
