"""Read a real Keras model (Sequential or functional, Keras 3) as a :class:`FloatGraph`.

The model's own graph is read from ``model.get_config()`` (each layer's ``inbound_nodes``), so a
layer called several times becomes one operation per call with the same weights, and branches
and residual connections are kept; weights come from ``layer.get_weights()``. Keras itself is
never imported. Supported layers (channels-last): ``Dense`` (on a flat input; on an image, a 1x1
convolution), ``Conv2D``
(``groups=1``), ``DepthwiseConv2D``, ``SeparableConv2D`` (depthwise then 1x1), ``MaxPooling2D``,
``AveragePooling2D``, ``GlobalAveragePooling2D``, ``GlobalMaxPooling2D``, ``ZeroPadding2D``,
``Add`` (two or more inputs), ``Concatenate``, ``Flatten``, ``Reshape``,
``BatchNormalization`` (folded into the convolution or Dense before it), ``Rescaling`` without
offset (folded into the Dense or convolution after it), ``Activation``, ``ReLU``
(max 6 or none), ``Softmax``, and the no-ops ``InputLayer`` and ``Dropout``. Anything else, a
nested model, or a model with several inputs or outputs is refused with the layer named.
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedModelError
from .floatgraph import GraphBuilder

__all__ = ["KERAS_GRAPH_LAYERS", "keras_float_graph"]

#: Keras layer classes read as graph operations.
KERAS_GRAPH_LAYERS = ("Dense", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D",
                      "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
                      "ZeroPadding2D", "Add", "Concatenate", "Flatten", "Reshape",
                      "BatchNormalization", "Rescaling", "Activation", "ReLU", "Softmax",
                      "InputLayer", "Dropout")


#: Attributes of a 1x1 convolution (SeparableConv2D's pointwise half, Dense on an image).
_POINTWISE = {"stride": (1, 1), "dilation": (1, 1), "padding": ((0, 0), (0, 0))}


def _refuse(layer, kind, why):
    raise UnsupportedModelError(f"Keras layer {layer!r} ({kind}) {why}")


def _activation(name, layer, kind):
    from .importers import _activation_name
    if isinstance(name, dict):                 # serialised activation object
        name = name.get("config", {}).get("name", name.get("class_name"))
    if name == "softmax":
        return "softmax"
    return _activation_name(name, f"Keras layer {layer!r} ({kind})")


def _pair(value):
    return (int(value), int(value)) if np.isscalar(value) else tuple(int(v) for v in value)


def _padding(config, in_shape, kernel, stride, dilation):
    from ..numerics.cnn import same_padding
    if config.get("padding", "valid") == "valid":
        return ((0, 0), (0, 0))
    return tuple(same_padding(n, k, s, d)
                 for n, k, s, d in zip(in_shape[:2], kernel, stride, dilation))


class _Reader(GraphBuilder):
    def __init__(self, shape):
        super().__init__("input", shape)
        self.alias = {}               # (layer, node, index) -> tensor name
        self.scaled = {}              # Rescaling output -> (its input, scale), folded forward

    def tensor(self, history):
        layer, node, index = history[:3]
        return self.alias[(layer, int(node), int(index))]

    def _fused(self, kind, name, inputs, output, attrs, weight, bias, activation):
        if activation == "softmax":
            self.emit(kind, name, inputs, f"{output}:logits", attrs, weight, bias)
            self.emit("SOFTMAX", f"{name}:softmax", [f"{output}:logits"], output)
        else:
            self.emit(kind, name, inputs, output, dict(attrs, activation=activation), weight,
                      bias)

    def rescaled(self, layer, kind, x, weights):
        """Fold a pending ``Rescaling`` of ``x`` into the first weight (along its input axis)."""
        if x not in self.scaled:
            return x, weights
        x, scale = self.scaled[x]
        scale = np.asarray(scale, np.float64)
        if kind == "Dense" and scale.size != 1:
            _refuse(layer.name, kind, "follows a per-channel Rescaling; flatten after a "
                    "convolution instead")
        shape = (1, 1, -1, 1) if kind != "Dense" else (1, 1)
        return x, [weights[0] * scale.reshape(shape), *weights[1:]]

    def layer(self, layer, kind, config, inputs, output):
        """Emit ``layer``'s operations; return the tensor that stands for its output."""
        x = inputs[0]
        weights = [np.asarray(w, np.float64) for w in layer.get_weights()]
        if kind in ("Dense", "Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            x, weights = self.rescaled(layer, kind, x, weights)
            inputs = [x]
        elif any(t in self.scaled for t in inputs):
            _refuse(layer.name, kind, "reads the output of a Rescaling; Tessera folds "
                    "Rescaling (without offset) only into a Dense or convolution after it")
        shape = self.shapes[x]
        act = _activation(config.get("activation", "linear"), layer.name, kind)
        if (config.get("data_format") or "channels_last") != "channels_last":
            _refuse(layer.name, kind, "is channels_first; use channels_last (NHWC) layers")
        if kind == "Rescaling":
            if np.any(np.asarray(config.get("offset", 0.0), np.float64) != 0):
                _refuse(layer.name, kind, "has an offset; Tessera folds Rescaling(scale) into "
                        "the next Dense or convolution only without offset: shift the inputs "
                        "before calling the model")
            self.scaled[output] = (x, config["scale"])
            self.shapes[output] = shape
            return output
        if kind == "Activation" and act == "none":
            return x
        if kind == "Dense":
            bias = weights[1] if len(weights) > 1 else None
            if len(shape) == 3:                  # on every pixel: a 1x1 convolution
                self._fused("CONV_2D", output, inputs, output, _POINTWISE,
                            weights[0].T[:, None, None], bias, act)
            elif len(shape) == 1:
                self._fused("FULLY_CONNECTED", output, inputs, output, {}, weights[0], bias, act)
            else:
                _refuse(layer.name, kind, f"is applied to a {shape} input; Tessera's Dense "
                        "takes a flat input or an H x W x C image: add a Flatten before it")
        elif kind in ("Conv2D", "DepthwiseConv2D"):
            if int(config.get("groups", 1)) != 1:
                _refuse(layer.name, kind, f"has groups={config['groups']}; only 1 is supported")
            kernel = weights[0]
            stride, dilation = _pair(config["strides"]), _pair(config["dilation_rate"])
            attrs = {"stride": stride, "dilation": dilation,
                     "padding": _padding(config, shape, kernel.shape[:2], stride, dilation)}
            if kind == "Conv2D":                 # [KH, KW, IC, OC] -> [OC, KH, KW, IC]
                weight, op_kind = kernel.transpose(3, 0, 1, 2), "CONV_2D"
            else:                                # [KH, KW, IC, mult] -> [1, KH, KW, IC*mult]
                weight, op_kind = kernel.reshape(1, *kernel.shape[:2], -1), "DEPTHWISE_CONV_2D"
                attrs["depth_multiplier"] = int(kernel.shape[3])
            bias = weights[1] if len(weights) > 1 else None
            self._fused(op_kind, output, inputs, output, attrs, weight, bias, act)
        elif kind == "SeparableConv2D":
            depthwise, pointwise = weights[0], weights[1]
            stride, dilation = _pair(config["strides"]), _pair(config["dilation_rate"])
            padding = _padding(config, shape, depthwise.shape[:2], stride, dilation)
            attrs = {"stride": stride, "dilation": dilation, "padding": padding,
                     "depth_multiplier": int(depthwise.shape[3])}
            self.emit("DEPTHWISE_CONV_2D", f"{output}:depthwise", inputs, f"{output}:depthwise",
                      attrs, depthwise.reshape(1, *depthwise.shape[:2], -1))
            bias = weights[2] if len(weights) > 2 else None
            self._fused("CONV_2D", output, [f"{output}:depthwise"], output,
                        _POINTWISE, pointwise.transpose(3, 0, 1, 2), bias, act)
        elif kind == "ZeroPadding2D":
            (top, bottom), (left, right) = (_pair(p) for p in config["padding"])
            self.emit("PAD", output, inputs, output,
                      {"paddings": ((top, bottom), (left, right), (0, 0))})
        elif kind == "GlobalMaxPooling2D":
            h, w, c = shape
            self.emit("MAX_POOL_2D", f"{output}:pool", inputs, f"{output}:pool",
                      {"pool": (h, w), "stride": (1, 1), "padding": ((0, 0), (0, 0))})
            self.emit("RESHAPE", output, [f"{output}:pool"], output,
                      {"shape": (1, 1, c) if config.get("keepdims") else (c,)})
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            pool = _pair(config["pool_size"])
            stride = _pair(config.get("strides") or pool)
            attrs = {"pool": pool, "stride": stride,
                     "padding": _padding(config, shape, pool, stride, (1, 1))}
            self.emit("MAX_POOL_2D" if kind == "MaxPooling2D" else "AVERAGE_POOL_2D", output,
                      inputs, output, attrs)
        elif kind == "GlobalAveragePooling2D":
            self.emit("MEAN", output, inputs, output, {"keepdims": bool(config.get("keepdims"))})
        elif kind == "Add":                     # n inputs: a chain of two-input ADDs
            total = inputs[0]
            for index, other in enumerate(inputs[1:], 1):
                partial = output if index == len(inputs) - 1 else f"{output}:partial{index}"
                self.emit("ADD", partial, [total, other], partial)
                total = partial
        elif kind == "Concatenate":
            axis = int(config.get("axis", -1))
            self.emit("CONCATENATION", output, inputs, output,
                      {"axis": axis - 1 if axis > 0 else axis})
        elif kind in ("Flatten", "Reshape"):
            size = int(np.prod(shape))
            target = [size] if kind == "Flatten" else [int(d) for d in config["target_shape"]]
            if -1 in target:                     # Keras infers one dimension
                target[target.index(-1)] = size // -int(np.prod(target))
            self.emit("RESHAPE", output, inputs, output, {"shape": tuple(target)})
        elif kind == "BatchNormalization":
            self.batchnorm(layer, config, weights, x, output)
        elif kind in ("Activation", "ReLU", "Softmax"):
            if kind == "ReLU":
                from .keras_import import _activation as relu_kind
                act = relu_kind(layer, kind, config)
            if kind == "Softmax" or act == "softmax":
                self.emit("SOFTMAX", output, inputs, output)
            else:
                self.emit("ACTIVATION", output, inputs, output, {"function": act})
        else:
            _refuse(layer.name, kind, "is not supported; supported: "
                    + ", ".join(KERAS_GRAPH_LAYERS))
        return output

    def batchnorm(self, layer, config, weights, x, output):
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        if axis not in (-1, len(self.shapes[x])):
            _refuse(layer.name, "BatchNormalization", f"normalises axis {axis}; only the "
                    "channel (last) axis is supported")
        values = list(weights)
        gamma = values.pop(0) if config.get("scale", True) else 1.0
        beta = values.pop(0) if config.get("center", True) else 0.0
        mean, var = values
        self.fold_batchnorm(x, output, gamma, beta, mean, var,
                            float(config.get("epsilon", 1e-3)), name=layer.name,
                            where=f"Keras layer {layer.name!r} (BatchNormalization)")


def _nodes(config, model):
    """Return ``[(layer name, node index, [input histories])]`` for every call of every layer,
    and the input and output histories of the model."""
    if "input_layers" not in config:             # Sequential: a chain of model.layers
        names = [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]
        calls, previous = [], ("input", 0, 0)
        for name in names:
            calls.append((name, 0, [previous]))
            previous = (name, 0, 0)
        return calls, [("input", 0, 0)], [previous]
    calls = []
    for entry in config["layers"]:
        for index, node in enumerate(entry.get("inbound_nodes", [])):
            flat = []
            _histories(node.get("args", node) if isinstance(node, dict) else node, flat)
            calls.append((entry["name"], index, flat))
    ins, outs = config["input_layers"], config["output_layers"]
    ins = [ins] if ins and isinstance(ins[0], str) else ins
    outs = [outs] if outs and isinstance(outs[0], str) else outs
    return calls, [tuple(i) for i in ins], [tuple(o) for o in outs]


def _histories(value, out):
    if isinstance(value, dict):
        history = value.get("config", {}).get("keras_history")
        if history is not None:
            out.append(tuple(history))
        return
    if isinstance(value, (list, tuple)):
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
            out.append(tuple(value[:3]))                  # Keras 2: [layer, node, tensor, kw]
            return
        for item in value:
            _histories(item, out)


def keras_float_graph(model):
    """Return the Keras ``model`` as a :class:`FloatGraph` (NHWC, activations fused).

    Raises
    ------
    UnsupportedModelError
        A layer, option or topology Tessera does not import (the layer is named).
    ValueError
        The model is not built (no input shape).
    """
    config = model.get_config()
    calls, ins, outs = _nodes(config, model)
    if len(ins) != 1 or len(outs) != 1:
        raise UnsupportedModelError(f"The Keras model {model.name!r} has {len(ins)} inputs and "
                                    f"{len(outs)} outputs; Tessera imports one of each")
    try:
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"The Keras model {model.name!r} has no fixed input shape; build it "
                         "with keras.Input(shape=...) first") from None
    reader = _Reader(shape)
    reader.alias[ins[0]] = "input"
    layers = {layer.name: layer for layer in model.layers}
    pending = [call for call in calls if call[0] not in (ins[0][0],)]
    while pending:
        ready = [c for c in pending if all(h in reader.alias for h in c[2])]
        if not ready:
            raise UnsupportedModelError(f"The Keras model {model.name!r}: layer "
                                        f"{pending[0][0]!r} has inputs Tessera cannot resolve")
        name, index, histories = ready[0]
        pending.remove(ready[0])
        layer = layers[name]
        kind = type(layer).__name__
        output = name if index == 0 else f"{name}#{index}"
        if hasattr(layer, "layers") and kind not in KERAS_GRAPH_LAYERS:
            _refuse(name, kind, "is a nested model; build one flat functional model")
        inputs = [reader.tensor(h) for h in histories]
        reader.check_inputs(inputs, f"Keras layer {name!r} ({kind})")
        if kind in ("InputLayer", "Dropout"):
            reader.alias[(name, index, 0)] = inputs[0]
            continue
        reader.alias[(name, index, 0)] = reader.layer(layer, kind, layer.get_config(), inputs,
                                                      output)
    output = reader.tensor(outs[0])
    if output in reader.scaled:
        raise UnsupportedModelError(f"The Keras model {model.name!r} ends in a Rescaling; "
                                    "Tessera folds Rescaling only into a layer after it")
    return reader.graph(output, name=model.name)
