"""The quantized graph model: predict, quantize at the edges, report, save (docs/graph.md)."""

from __future__ import annotations

import numpy as np

from .graph import Graph

__all__ = ["QuantizedGraph"]

# NCHW sources: the graph is NHWC; rank-3 per-sample arrays are transposed at the edges.
_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


class QuantizedGraph:
    """A quantized model that is a graph of operations (CNNs and everything else).

    Parameters
    ----------
    graph : Graph
        With one input and one output.
    info : dict, optional
        JSON-serialisable facts about the model (source, runtime, ...).
    """

    def __init__(self, graph, *, info=None):
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a tessera.graph.Graph, not {type(graph).__name__}")
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise ValueError(f"A QuantizedGraph has one input and one output; graph "
                             f"{graph.name!r} has {len(graph.inputs)} and {len(graph.outputs)}")
        self.graph = graph
        self.info = dict(info or {})

    # -- the edges ---------------------------------------------------------------------------
    @property
    def mode(self):
        """Requantization mode of every operation."""
        return self.graph.mode

    @property
    def input_layout(self):
        """Layout of :meth:`predict`'s input and output: ``"NHWC"`` or ``"NCHW"``."""
        return self.graph.input_layout

    @property
    def input_tensor(self):
        """The graph's input :class:`~tessera.graph.Tensor` (NHWC)."""
        return self.graph.tensor(self.graph.inputs[0])

    @property
    def output_tensor(self):
        """The graph's output :class:`~tessera.graph.Tensor` (NHWC)."""
        return self.graph.tensor(self.graph.outputs[0])

    def _source_shape(self, shape):
        if self.input_layout == "NCHW" and len(shape) == 3:
            return (shape[2], shape[0], shape[1])
        return tuple(shape)

    @property
    def input_shape(self):
        """Per-sample input shape in :attr:`input_layout` (``predict`` takes ``[B, *shape]``)."""
        return self._source_shape(self.input_tensor.shape)

    @property
    def output_shape(self):
        """Per-sample output shape in :attr:`input_layout`."""
        return self._source_shape(self.output_tensor.shape)

    @property
    def input_scale(self):
        """Scale of the quantized input."""
        return self.input_tensor.qparams.scalar_scale

    @property
    def input_zero_point(self):
        """Zero point of the quantized input."""
        return self.input_tensor.qparams.scalar_zero_point

    @property
    def output_scale(self):
        """Scale of the quantized output."""
        return self.output_tensor.qparams.scalar_scale

    @property
    def output_zero_point(self):
        """Zero point of the quantized output."""
        return self.output_tensor.qparams.scalar_zero_point

    @property
    def input_bits(self):
        """Width of the quantized input."""
        return self.input_tensor.qparams.bits

    def _check_shape(self, x, what):
        if x.ndim != 1 + len(self.input_shape) or x.shape[1:] != self.input_shape:
            dims = ", ".join(map(str, self.input_shape))
            raise ValueError(f"{what} must be an array [batch, {dims}] "
                             f"({self.input_layout}), not shape {x.shape}")

    def quantize_input(self, x):
        """Return float ``x`` ``[B, *input_shape]`` quantized with the input's parameters."""
        from ..numerics import quantize_tensor
        x = np.asarray(x)
        self._check_shape(x, "Input")
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise TypeError(f"Input must be a real numeric array, not {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise ValueError("Input contains NaN or infinity; clean the data first")
        return quantize_tensor(x, self.input_scale, self.input_zero_point, mode=self.mode,
                               bits=self.input_bits)

    def dequantize_output(self, y_q):
        """Return the quantized output ``y_q`` as float32."""
        from ..numerics import dequantize_tensor
        return dequantize_tensor(y_q, self.output_scale, self.output_zero_point)

    # -- running -----------------------------------------------------------------------------
    def to_graph_layout(self, x_q):
        """Return a checked raw input ``[B, *input_shape]`` (source layout) in NHWC.

        Every executor of the graph (this reference, the device) takes its input through this
        method, so an NCHW source is transposed in exactly one place.
        """
        x_q = np.asarray(x_q)
        dtype = np.dtype(self.input_tensor.dtype)
        self._check_shape(x_q, "Raw input")
        if x_q.dtype != dtype:
            raise ValueError(f"Raw input must be {dtype}, not {x_q.dtype}; use quantize_input() "
                             "on float data")
        if self.input_layout == "NCHW" and x_q.ndim == 4:
            x_q = np.ascontiguousarray(x_q.transpose(_TO_NHWC))
        return x_q

    def from_graph_layout(self, y_q):
        """Return the graph's NHWC output ``y_q`` in the source layout (:attr:`input_layout`)."""
        if self.input_layout == "NCHW" and y_q.ndim == 4:
            y_q = np.ascontiguousarray(y_q.transpose(_TO_NCHW))
        return y_q

    def forward_raw(self, x_q, *, keep=None):
        """Return every activation (tensor name -> array, NHWC) for the raw input ``x_q``.

        ``x_q`` is ``[B, *input_shape]`` in :attr:`input_layout`, of the input's dtype.
        ``keep``: names of the activations to return (None: all; the others are freed after
        their last use).
        """
        return self.graph.execute({self.graph.inputs[0]: self.to_graph_layout(x_q)}, keep=keep)

    def predict(self, x, *, raw=False):
        """Run the bit-exact NumPy reference.

        Parameters
        ----------
        x : numpy.ndarray
            float ``[B, *input_shape]`` in :attr:`input_layout`; with ``raw=True`` already
            quantized (int8) with :attr:`input_scale` / :attr:`input_zero_point`.
        raw : bool
            Return the quantized output instead of the dequantized float32 one.
        """
        x_q = np.asarray(x) if raw else self.quantize_input(x)
        y_q = self.forward_raw(x_q, keep=set(self.graph.outputs))[self.graph.outputs[0]]
        y_q = self.from_graph_layout(y_q)
        return y_q if raw else self.dequantize_output(y_q)

    # -- reports, files, conversion ----------------------------------------------------------
    def summary(self):
        """Return the per-operation report (see :func:`tessera.graph.report.summary`)."""
        from .report import summary
        return summary(self)

    def save(self, path):
        """Write the model to ``path`` (.npz, format version 2, no pickle)."""
        from ..quantize.serialize import save_graph
        save_graph(self, path)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save` (a dense chain file gives a QuantizedModel)."""
        from ..quantize.serialize import load
        return load(path)

    def to_dense_chain(self):
        """Return the equivalent :class:`~tessera.quantize.QuantizedModel` (FC + LUT chains).

        Raises
        ------
        ValueError
            The graph holds another operation (named) or is not a chain.
        """
        from .dense import dense_chain_from_graph
        return dense_chain_from_graph(self)

    def first_unsupported(self, kinds):
        """Return the index of the first operation whose kind is not in ``kinds`` (or None)."""
        return next((i for i, op in enumerate(self.graph.ops) if op.kind not in kinds), None)

    def __repr__(self):
        return (f"<QuantizedGraph {self.graph.name!r} {len(self.graph.ops)} ops "
                f"{list(self.input_shape)} -> {list(self.output_shape)} mode={self.mode}>")
