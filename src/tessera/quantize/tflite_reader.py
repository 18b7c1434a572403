"""Read a TFLite flatbuffer: the model, its tensors and constants, and the shared checks.

The file is read with LiteRT's generated schema (``ai_edge_litert.schema_py_generated``, object
API): no TensorFlow, and nothing in the file is executed. Both importers, the chain importer
(:mod:`.tflite_import`) and the graph importer (:mod:`.tflite_graph`), read through a
:class:`TFLiteReader` and refuse what they cannot keep with its messages.
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedModelError
from .prequantized import QParams
from .sources import read_model_bytes

__all__ = ["TFLiteReader", "is_tflite_bytes", "read_tflite"]


def is_tflite_bytes(data):
    """Return whether ``data`` starts like a TFLite flatbuffer (identifier ``TFL3``)."""
    return len(data) >= 8 and bytes(data[4:8]) == b"TFL3"


def read_tflite(source):
    """Return ``(model, data, name)`` of a TFLite file or bytes: the unpacked ``ModelT``.

    Raises
    ------
    FileNotFoundError
        ``source`` is a path that does not exist.
    ValueError
        Not a TFLite flatbuffer, or a truncated or corrupt one.
    """
    data, name = read_model_bytes(source, "TFLite")
    if not is_tflite_bytes(data):
        raise ValueError(f"{name} is not a TFLite model (no 'TFL3' flatbuffer identifier)")
    from ai_edge_litert import schema_py_generated as schema
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:     # flatbuffers raises IndexError/struct.error on bad offsets
        raise ValueError(f"{name} is a truncated or corrupt TFLite file ({type(exc).__name__}: "
                         f"{exc})") from None
    return model, data, name


class TFLiteReader:
    """One-subgraph TFLite model: tensors, constants, quantization and the checks both importers
    make (the chain importer :mod:`.tflite_import`, the graph importer :mod:`.tflite_graph`).

    Parameters
    ----------
    model : ai_edge_litert.schema_py_generated.ModelT
    data : bytes
        The file's bytes (constants may lie outside the flatbuffer, at an offset).
    name : str
        Names the model in every message.
    """

    def __init__(self, model, data, name):
        from ai_edge_litert import schema_py_generated as schema
        self.schema, self.model, self.data, self.name = schema, model, data, name
        if model.subgraphs is None or len(model.subgraphs) != 1:
            raise UnsupportedModelError(
                f"{name}: Tessera imports models with one subgraph, found "
                f"{len(model.subgraphs or [])}")
        self.graph = model.subgraphs[0]
        codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.op_names = [
            codes.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM")
            if c.customCode is None else f"CUSTOM:{c.customCode.decode(errors='replace')}"
            for c in model.operatorCodes]
        types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        self.type_names = types

    def tensor(self, index):
        tensors = self.graph.tensors or []
        if not 0 <= index < len(tensors):
            raise ValueError(f"{self.name} is corrupt: it refers to tensor {index}, but its "
                             f"subgraph has {len(tensors)} tensors")
        return tensors[index]

    def check_operator(self, i, op):
        """Refuse an operator whose opcode or tensor indices lie outside the file."""
        if not 0 <= op.opcodeIndex < len(self.op_names):
            raise ValueError(f"{self.name} is corrupt: operator {i} has opcode index "
                             f"{op.opcodeIndex}, but the file lists {len(self.op_names)} opcodes")
        if op.outputs is None or len(op.outputs) == 0:
            raise ValueError(f"{self.name} is corrupt: operator {i} has no output tensor")
        # -1 marks an absent optional input (a FULLY_CONNECTED without bias).
        for index in [t for t in (op.inputs if op.inputs is not None else []) if t != -1] + \
                list(op.outputs):
            self.tensor(int(index))

    def tname(self, index):
        t = self.tensor(index)
        return (t.name or b"").decode(errors="replace") if isinstance(t.name, bytes) else t.name

    def describe(self, i, op):
        kind, out = self.op_names[op.opcodeIndex], self.tname(op.outputs[0])
        return f"operator {i} ({kind}, output {out!r})"

    def type_of(self, index):
        return self.type_names.get(self.tensor(index).type, "?")

    def qparams(self, index, where):
        q = self.tensor(index).quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            raise UnsupportedModelError(f"{where}: tensor {self.tname(index)!r} is not quantized")
        return QParams.from_file(np.asarray(q.scale, np.float32),
                                 np.asarray(q.zeroPoint if q.zeroPoint is not None else [0],
                                            np.int64), where=where)

    def is_constant(self, index):
        """Return whether tensor ``index`` holds data in the file (a constant)."""
        t = self.tensor(index)
        buf = self.model.buffers[t.buffer] if t.buffer < len(self.model.buffers or []) else None
        return buf is not None and ((buf.data is not None and len(buf.data) > 0)
                                    or bool(buf.offset and buf.offset > 1))

    def constant(self, index, dtype, where):
        t = self.tensor(index)
        buf = self.model.buffers[t.buffer] if t.buffer < len(self.model.buffers) else None
        raw = None
        if buf is not None and buf.data is not None and len(buf.data):
            raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
        elif buf is not None and buf.offset and buf.offset > 1:
            raw = self.data[buf.offset:buf.offset + buf.size]
        if raw is None:
            raise UnsupportedModelError(
                f"{where}: tensor {self.tname(index)!r} is not a constant; Tessera "
                "needs constant weights and biases")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if len(raw) != np.dtype(dtype).itemsize * int(np.prod(shape)):
            raise ValueError(f"{where}: tensor {self.tname(index)!r} holds {len(raw)} bytes, "
                             f"not {shape} {np.dtype(dtype).name}; the file is corrupt")
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    # -- checks of weighted operators (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D) ----------
    def fused_activation(self, opts, where):
        """Return ``"none"``, ``"relu"`` or ``"relu6"``, the fused activation of ``opts``."""
        acts = {self.schema.ActivationFunctionType.NONE: "none",
                self.schema.ActivationFunctionType.RELU: "relu",
                self.schema.ActivationFunctionType.RELU6: "relu6"}
        code = getattr(opts, "fusedActivationFunction", 0) if opts is not None else 0
        if code not in acts:
            names = {v: k for k, v in vars(self.schema.ActivationFunctionType).items()
                     if not k.startswith("_")}
            raise UnsupportedModelError(
                f"{where} has fused activation {names.get(code, code)}; Tessera "
                "supports NONE, RELU and RELU6")
        return acts[code]

    def check_int8_weight(self, op, where):
        """Refuse weights (input 1 of ``op``) that are not int8."""
        if self.type_of(op.inputs[1]) != "INT8":
            raise UnsupportedModelError(
                f"{where} has {self.type_of(op.inputs[1])} weights; Tessera needs int8")

    def check_symmetric_weight(self, index, where, name=None):
        """Refuse a weight tensor whose zero points are not all 0 (``name`` shown, or its own)."""
        q = self.tensor(index).quantization
        if q is not None and q.zeroPoint is not None and np.any(np.asarray(q.zeroPoint) != 0):
            name = self.tname(index) if name is None else name
            raise UnsupportedModelError(
                f"{where}: weight {name!r} has zero points other than 0; Tessera needs "
                "symmetric weights")

    def bias_index(self, op, where):
        """Return the tensor index of ``op``'s int32 bias (input 2), or None if it has none."""
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            return None
        if self.type_of(op.inputs[2]) != "INT32":
            raise UnsupportedModelError(
                f"{where} has a {self.type_of(op.inputs[2])} bias; Tessera needs int32")
        return op.inputs[2]

    def check_fully_connected_options(self, op, where, *, one_pixel=False):
        """Refuse a FULLY_CONNECTED whose weights are stored in a shuffled format or that keeps
        its input's dimensions (a Keras Dense on a feature map: one product per pixel), unless
        ``one_pixel`` and the map has one pixel (a squeeze-excite block's Dense after a global
        pool with keepdims: a plain product)."""
        o = op.builtinOptions
        if o is not None and o.weightsFormat != \
                self.schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
            raise UnsupportedModelError(f"{where} uses a shuffled weights format; not supported")
        shape = [int(d) for d in self.tensor(op.outputs[0]).shape]
        rank = len(shape)
        if rank != 2 and not (one_pixel and int(np.prod(shape[:-1])) == 1):
            raise UnsupportedModelError(
                f"{where} keeps {rank} output dimensions (keep_num_dims); Tessera reads "
                "[batch, N] outputs")
