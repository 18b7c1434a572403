"""Lowering of a tensor graph's operations to ISA version 3 steps (docs/compiler.md, "Graphs").

Each operation of a :class:`~tessera.graph.QuantizedGraph` becomes a :class:`DeviceStep`: a
``CONV`` (convolution, dense layer, depthwise convolution, average or max pool, a MEAN over
height and width where it is bit-exact: :mod:`.graph_mean`, a standalone RELU/RELU6 as a 1x1
max pool that clamps) or an ``ADD`` with its window,
``WGT`` entries, ``PARAM`` entries and post state; a ``RESHAPE`` that keeps the entries is an
alias, a ``PAD`` read only by convolutions folds into their padding. Every other operation (or
one whose parameters the device cannot hold) runs on the host with the graph's own kernel
(``where == "host"``, the reason in ``extra["reason"]``); :mod:`.graph_segments` splits the
program around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import numerics
from ..numerics.requant_tflite import quantize_multiplier
from ..runtime.conv import Window
from ..spec import isa
from .graph_mean import MAX_KERNEL, plan_mean
from .lowering import PARAM_DTYPE

__all__ = ["DeviceStep", "NoDeviceMapping", "demote_host_read", "lower_graph", "map_shape",
           "to_host"]

#: Where a step runs ("folded": a PAD merged into the convolutions that read it).
DEVICE, ALIAS, HOST, FOLDED = "device", "alias", "host", "folded"


def map_shape(shape) -> tuple[int, int, int]:
    """Return ``(H, W, C)`` of a per-sample activation shape (a vector ``[K]`` is 1x1xK)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 1:
        return 1, 1, shape[0]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    raise ValueError(f"Activation shape {shape} is not HxWxC or a vector")


@dataclass(eq=False)
class DeviceStep:
    """One operation as the compiled program executes it.

    Attributes
    ----------
    index, kind, name : int, str, str
        The graph operation.
    where : {"device", "alias", "folded", "host"}
    inputs, output : tuple of str, str
        Activation tensor names (``inputs`` of a device step are the maps it reads, a folded
        operation's input in its place; a host step's are its operation's own).
    instruction : str
        ``"CONV"`` or ``"ADD"`` (device steps).
    conv_kind : isa.ConvKind or None
    window : Window or None
    weights : numpy.ndarray or None
        ``WGT`` entries ``[n, cols]`` (int8) of this step.
    params : numpy.ndarray or None
        ``PARAM`` entries (``PARAM_DTYPE``).
    post : isa.Post or None
    macs : int
        Multiply-accumulates of the operation (graph count, per sample).
    extra : dict
        ``"reason"``: why a host step does not run on the device.
    """

    index: int
    kind: str
    name: str
    where: str
    inputs: tuple
    output: str
    instruction: str = ""
    conv_kind: isa.ConvKind | None = None
    window: Window | None = None
    weights: np.ndarray | None = None
    params: np.ndarray | None = None
    post: isa.Post | None = None
    macs: int = 0
    extra: dict = field(default_factory=dict)


class NoDeviceMapping(Exception):
    """The device cannot run an operation (the message says why); the host runs it."""


def _unsupported(graph, index, why):
    from ..quantize.errors import UnsupportedModelError
    return UnsupportedModelError(
        f"The device cannot run {graph.describe(index)} of graph {graph.name!r}: {why}; run the "
        f"model on the host with model.predict(x)")


def _scalar(q):
    return np.float32(q.scale), int(q.zero_point)


def _params(bias, multiplier, shift) -> np.ndarray:
    entries = np.zeros(len(bias), dtype=PARAM_DTYPE)
    entries["bias"], entries["multiplier"], entries["shift"] = bias, multiplier, shift
    return entries


def _conv_weights(w_kn, cols) -> np.ndarray:
    """Return the WGT entries of a ``[K, N]`` weight: group *g*, step *k* at ``g*K + k``."""
    k, n = w_kn.shape
    groups = -(-n // cols)
    padded = np.zeros((k, groups * cols), dtype=np.int8)
    padded[:, :n] = w_kn
    entries = padded.reshape(k, groups, cols).transpose(1, 0, 2)
    return np.ascontiguousarray(entries).reshape(-1, cols)


def _depthwise_weights(w_tc, cols) -> np.ndarray:
    """Return the WGT entries of a ``[taps, C]`` depthwise weight (channel-major, operand 0)."""
    taps, c = w_tc.shape
    entries = np.zeros((c * taps, cols), dtype=np.int8)
    entries[:, 0] = w_tc.T.reshape(-1)
    return entries


def _requant(graph, index, x, w, y, w_kn, bias, activation, config):
    """Return ``(params, post)`` of a convolution-like step with weights ``w_kn [K, N]``."""
    sx, zx = _scalar(x.qparams)
    sy, zy = _scalar(y.qparams)
    n = w_kn.shape[1]
    w_scale = np.broadcast_to(np.asarray(w.qparams.scale, np.float32), (n,))
    mode = isa.Mode.TFLITE if graph.mode == "tflite" else isa.Mode.ONNX
    try:
        folded = numerics.fold_input_zero_point(w_kn, bias, zx)
        multiplier, shift = numerics.requant_multipliers(sx, w_scale, sy, graph.mode)
    except (OverflowError, ValueError) as e:
        raise NoDeviceMapping(str(e)) from None
    bound = numerics.accumulator_bound(w_kn, folded)
    if bound >= 1 << (config.acc_bits - 1):
        raise NoDeviceMapping(f"its accumulator can reach {bound}, beyond int"
                                         f"{config.acc_bits}")
    lo, hi = numerics.activation_bounds(activation, sy, zy)
    post = isa.Post(mode, False, zy, int(lo), int(hi))
    return _params(folded, multiplier, shift), post


def _stride(stride, out_size):
    """Return the stride to encode: any stride reads the same taps when one pixel comes out."""
    return 1 if out_size == 1 else stride


def _foldable(graph):
    """Return ``{tensor: (source, top, left)}`` of the operations folded into their readers.

    A PAD every reader of which is a convolution (padding with the output zero point is the
    convolution's own padding), and a RESHAPE flattening an H x W x C map (H*W > 1) read only by
    dense layers (a dense layer over the flattened map is a convolution with an H x W kernel:
    both order the weights (h, w, c)).
    """
    folds = {}
    for op in graph.ops:
        if op.kind != "PAD":
            continue
        (top, _), (left, _), channels = op.attrs["paddings"]
        readers = graph.consumers(op.outputs[0])
        if readers and channels == (0, 0) and op.outputs[0] not in graph.outputs and all(
                graph.ops[r].kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and
                graph.ops[r].inputs[0] == op.outputs[0] for r in readers):
            folds[op.outputs[0]] = (op.inputs[0], top, left)
    for op in graph.ops:      # a flatten read only by dense layers: their window is the map
        if op.kind != "RESHAPE" or len(graph.tensor(op.outputs[0]).shape) != 1:
            continue
        h, w, _ = map_shape(graph.tensor(op.inputs[0]).shape)
        readers = graph.consumers(op.outputs[0])
        if h * w > 1 and readers and op.outputs[0] not in graph.outputs and all(
                graph.ops[r].kind == "FULLY_CONNECTED" for r in readers):
            folds[op.outputs[0]] = (op.inputs[0], 0, 0)
    return folds


def _lower_conv(graph, index, op, config, folds):
    if not config.supports(graph.mode):
        raise NoDeviceMapping(f"the configuration builds requant modes {config.requant_modes}, "
                              f"not the graph's {graph.mode!r}")
    x, w = graph.tensor(op.inputs[0]), graph.tensor(op.inputs[1])
    y = graph.tensor(op.outputs[0])
    bias = None if op.inputs[2] is None else graph.tensor(op.inputs[2]).data
    (ih, iw, ic), (oh, ow, oc) = map_shape(x.shape), map_shape(y.shape)
    a = op.attrs
    if op.kind == "FULLY_CONNECTED":
        w_kn, kernel, stride, dil, pads = np.asarray(w.data), (1, 1), (1, 1), (1, 1), (0, 0)
        kind = isa.ConvKind.CONV
        ih = iw = oh = ow = 1
        ic, oc = w_kn.shape
        if op.inputs[0] in folds:      # over a flattened map: an H x W kernel, VALID
            ih, iw, ic = map_shape(graph.tensor(folds[op.inputs[0]][0]).shape)
            kernel = (ih, iw)
    elif op.kind == "CONV_2D":
        o, kh, kw, i = w.data.shape
        w_kn = np.ascontiguousarray(np.asarray(w.data).transpose(1, 2, 3, 0).reshape(-1, o))
        kernel, stride, dil = (kh, kw), a["stride"], a["dilation"]
        pads = (a["padding"][0][0], a["padding"][1][0])
        kind = isa.ConvKind.CONV
    else:
        _, kh, kw, c = w.data.shape
        w_kn = np.ascontiguousarray(np.asarray(w.data).reshape(kh * kw, c))
        kernel, stride, dil = (kh, kw), a["stride"], a["dilation"]
        pads = (a["padding"][0][0], a["padding"][1][0])
        kind = isa.ConvKind.DEPTHWISE
    _, zx = _scalar(x.qparams)
    if op.inputs[0] in folds and op.kind != "FULLY_CONNECTED":   # the PAD's input, padded
        source, top, left = folds[op.inputs[0]]
        ih, iw, _ = map_shape(graph.tensor(source).shape)
        pads = (pads[0] + top, pads[1] + left)
    if max(pads) > 15:
        raise NoDeviceMapping(f"padding {pads} before the first row/column is "
                                         f"beyond the window's 4-bit fields (at most 15)")
    window = Window(ih, iw, ic, oh, ow, oc, kernel[0], kernel[1], _stride(stride[0], oh),
                    _stride(stride[1], ow), dil[0], dil[1], pads[0], pads[1], zx)
    params, post = _requant(graph, index, x, w, y, w_kn, bias, a["activation"], config)
    weights = (_conv_weights(w_kn, config.cols) if kind == isa.ConvKind.CONV
               else _depthwise_weights(w_kn, config.cols))
    return dict(instruction="CONV", conv_kind=kind, window=window, weights=weights,
                params=params, post=post)


def _lower_pool(graph, index, op, config, folds):
    x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    a = op.attrs
    average = op.kind == "AVERAGE_POOL_2D"
    if average or _scalar(x.qparams) != _scalar(y.qparams):
        # ONNX Runtime's MaxPool is the int8 maximum when it does not requantize.
        _tflite_only(graph, op)
    (ih, iw, c), (oh, ow, _) = map_shape(x.shape), map_shape(y.shape)
    sy, zy = _scalar(y.qparams)
    lo, hi = numerics.activation_bounds(a["activation"], sy, zy)
    # Padded taps: an average pool's read 0 and are not counted; a max pool's read -128, which
    # never exceeds an in-bounds tap (TFLite skips both).
    window = Window(ih, iw, c, oh, ow, c, a["pool"][0], a["pool"][1],
                    _stride(a["stride"][0], oh), _stride(a["stride"][1], ow), 1, 1,
                    a["padding"][0][0], a["padding"][1][0], 0 if average else -128)
    kind = isa.ConvKind.AVERAGE_POOL if average else isa.ConvKind.MAX_POOL
    return dict(instruction="CONV", conv_kind=kind, window=window,
                post=isa.Post(isa.Mode.TFLITE, False, 0, int(lo), int(hi)))


def _tflite_only(graph, op):
    if graph.mode != "tflite":
        raise NoDeviceMapping(f"{op.kind} is mapped in mode 'tflite' only (mode {graph.mode!r} "
                              f"rounds it differently)")


def _lower_mean(graph, index, op, config, folds):
    _tflite_only(graph, op)
    x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    h, w, c = map_shape(x.shape)
    if max(h, w) > MAX_KERNEL:
        raise NoDeviceMapping(f"its {h}x{w} window is beyond the WINDOW's kernel fields (at most "
                              f"{MAX_KERNEL})")
    (sx, zx), (sy, zy) = _scalar(x.qparams), _scalar(y.qparams)
    plan = plan_mean(sx, zx, sy, zy, h * w)
    if plan is None:
        raise NoDeviceMapping(f"TFLite Micro's multiplier for {h * w} pixels and these scales is "
                              f"below 2^30, which no PARAM entry encodes exactly")
    if plan.kind == isa.ConvKind.AVERAGE_POOL:
        return dict(instruction="CONV", conv_kind=plan.kind,
                    window=Window(h, w, c, 1, 1, c, h, w, 1, 1, 1, 1, 0, 0, 0),
                    post=isa.Post(isa.Mode.TFLITE, False, 0, -128, 127))
    full = np.full(c, 1, np.int64)
    return dict(instruction="CONV", conv_kind=plan.kind,
                window=Window(h, w, c, 1, 1, c, h, w, 1, 1, 1, 1, 0, 0, zx),
                weights=_depthwise_weights(np.ones((h * w, c), np.int8), config.cols),
                params=_params(full * plan.bias, full * plan.multiplier, full * plan.shift),
                post=isa.Post(isa.Mode.TFLITE, False, zy, -128, 127))


def _lower_clamp(graph, index, op, config, folds):
    """RELU/RELU6 on a shared quantization: a 1x1 max pool whose drain clamps (exact)."""
    x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    h, w, c = map_shape(x.shape)
    sy, zy = _scalar(y.qparams)
    lo, hi = numerics.activation_bounds(op.kind.lower(), sy, zy, bits=y.qparams.bits)
    return dict(instruction="CONV", conv_kind=isa.ConvKind.MAX_POOL,
                window=Window(h, w, c, h, w, c, 1, 1, 1, 1, 1, 1, 0, 0, -128),
                post=isa.Post(isa.Mode.TFLITE, False, 0, int(lo), int(hi)))


def _lower_add(graph, index, op, config, folds):
    _tflite_only(graph, op)
    ta, tb = graph.tensor(op.inputs[0]), graph.tensor(op.inputs[1])
    y = graph.tensor(op.outputs[0])
    if tuple(ta.shape) != tuple(tb.shape):
        raise NoDeviceMapping("a broadcasting ADD is not mapped")
    (sa, za), (sb, zb), (sy, zy) = _scalar(ta.qparams), _scalar(tb.qparams), _scalar(y.qparams)
    twice_max = 2 * np.float64(max(sa, sb))       # numerics.ops_tflite.add, TFLite's add.cc
    ma, ea = quantize_multiplier(np.float64(sa) / twice_max)
    mb, eb = quantize_multiplier(np.float64(sb) / twice_max)
    my, ey = quantize_multiplier(twice_max / ((1 << 20) * np.float64(sy)))
    params = _params([-za, -zb, 0], [ma, mb, my], [ea, eb, ey])
    lo, hi = numerics.activation_bounds(op.attrs["activation"], sy, zy)
    return dict(instruction="ADD", params=params,
                post=isa.Post(isa.Mode.TFLITE, False, zy, int(lo), int(hi)))


_LOWER = {"CONV_2D": _lower_conv, "DEPTHWISE_CONV_2D": _lower_conv,
          "FULLY_CONNECTED": _lower_conv, "AVERAGE_POOL_2D": _lower_pool,
          "MAX_POOL_2D": _lower_pool, "ADD": _lower_add, "MEAN": _lower_mean,
          "RELU": _lower_clamp, "RELU6": _lower_clamp}


def lower_graph(qgraph, config) -> list:
    """Return the :class:`DeviceStep` of every operation of ``qgraph`` for ``config``.

    An operation the device cannot run gets ``where == "host"`` and its reason in
    ``step.extra["reason"]``; so does an alias or a folded operation a host step reads.

    Raises
    ------
    UnsupportedModelError
        The graph has more than one input or output.
    """
    graph = qgraph.graph
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise _unsupported(graph, 0, "the device runs graphs with one input and one output")
    steps = []
    last = len(graph.ops) - 1
    folds = _foldable(graph)
    for index, op in enumerate(graph.ops):
        out = op.outputs[0]
        acts = tuple(folds[n][0] if n in folds else n for n in op.inputs
                     if n is not None and not graph.tensor(n).is_constant)
        macs = op.spec.macs(op.attrs, [graph.tensor(n) if n else None for n in op.inputs],
                            graph.tensor(out).shape) if op.spec.macs else 0
        step = DeviceStep(index, op.kind, op.name, DEVICE, acts, out, macs=int(macs))
        try:
            if op.kind == "SOFTMAX" and index == last and out in graph.outputs:
                raise NoDeviceMapping("the classifier's final SOFTMAX runs on the host")
            if op.kind in ("PAD", "RESHAPE") and out in folds:
                step.where = FOLDED
            elif op.kind == "RESHAPE":
                (h, w, c), (h2, w2, c2) = (map_shape(graph.tensor(acts[0]).shape),
                                           map_shape(graph.tensor(out).shape))
                if h * w != 1 or h2 * w2 != 1 or c != c2:
                    raise NoDeviceMapping("only a reshape of a 1x1 map keeps the entries")
                step.where = ALIAS
            elif op.kind in _LOWER:
                for name, value in _LOWER[op.kind](graph, index, op, config, folds).items():
                    setattr(step, name, value)
            else:
                raise NoDeviceMapping(f"{op.kind} has no device mapping")
        except NoDeviceMapping as e:
            to_host(graph, step, str(e))
        steps.append(step)
    demote_host_read(graph, steps)
    return steps


def to_host(graph, step, reason):
    """Make ``step`` run on the host (its operation's own inputs) for ``reason``."""
    op = graph.ops[step.index]
    step.where, step.extra["reason"] = HOST, reason
    step.inputs = tuple(n for n in op.inputs if n is not None and not graph.tensor(n).is_constant)
    step.instruction, step.conv_kind, step.window = "", None, None
    step.weights = step.params = step.post = None


def demote_host_read(graph, steps):
    """Run on the host the aliases and folded operations whose output a host step reads."""
    changed = True
    while changed:
        changed = False
        host_read = {n for s in steps if s.where == HOST for n in s.inputs}
        for step in steps:
            if step.where in (ALIAS, FOLDED) and step.output in host_read:
                to_host(graph, step, "a host operation reads its output")
                changed = True
