"""Random small Keras CNNs, converted to int8 TFLite and checked against TFLite Micro.

:func:`build` makes a seeded, reproducible ``tf.keras`` model from a vocabulary of layers —
Conv2D (strides, dilation, SAME/VALID), DepthwiseConv2D (depth multiplier), SeparableConv2D,
Conv2D + BatchNormalization (folded by the converter), ReLU/ReLU6/LeakyReLU/sigmoid/tanh/
hard_swish both fused (``activation=``) and standalone (also right after a merge, where the
converter gives input and output different quantizations), residual Add, Concatenate,
Average/MaxPooling2D, ZeroPadding2D, and a head of GlobalAveragePooling2D or Flatten/Reshape,
an optional hidden Dense with an activation, Dense and an optional Softmax.
:func:`convert_cached` converts it with
:func:`tessera.quantize.tflite_convert.keras_to_int8_tflite`; :func:`check` runs discriminating
int8 inputs on TFLite Micro (the ``tflite-micro`` wheel) and requires
``tessera.load_model(...).predict`` and ``connect("emu", config=<CNN preset>).run`` to equal
it, or the import to refuse with
:class:`tessera.UnsupportedModelError` naming the operator. Used by ``tests/test_model_fuzz.py``
and ``bench/bench_model_fuzz.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

__all__ = ["build", "describe", "convert_cached", "operators", "check", "PRESET"]

#: Generator version: names the cached conversions (a new vocabulary makes new models).
VERSION = 2
#: The CNN preset the emulated device runs (the smallest; 4x2 MACs, 2 ACT lanes).
PRESET = "icebreaker-cnn"
_ACTIVATIONS = ("relu", "relu6", "sigmoid", "tanh", "hard_swish", "leaky_relu")


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")   # TensorFlow's C++ start-up banner
    import tensorflow as tf
    return tf


def _activation_layer(L, name, rng):
    if name == "relu":
        return L.ReLU()
    if name == "relu6":
        return L.ReLU(6.0)
    if name == "leaky_relu":
        return L.LeakyReLU(negative_slope=float(rng.choice([0.1, 0.2, 0.3])))
    return L.Activation(name)


def _fused(rng):
    """A fused ``activation=`` argument (LeakyReLU has none: it is always standalone)."""
    return str(rng.choice(["linear", "linear", "relu", "relu6", "sigmoid", "tanh", "hard_swish"]))


def _block(L, x, rng, log, width):
    h, w, c = (int(d) for d in x.shape[1:])
    small = min(h, w) < 4
    kinds = ["conv", "dw", "sep", "bn", "act", "add", "concat", "zeropad"]
    if not small:
        kinds += ["maxpool", "avgpool", "conv_stride"]
    kind = str(rng.choice(kinds))
    pad = str(rng.choice(["same", "valid"])) if not small else "same"
    k = int(rng.choice([1, 3])) if small else int(rng.choice([1, 2, 3]))
    channels = int(rng.integers(2, 7)) * width
    act = _fused(rng)
    if kind == "conv":
        dilation = int(rng.choice([1, 1, 2])) if not small and k > 1 else 1
        if pad == "valid" and (k - 1) * dilation + 1 > min(h, w):
            dilation = 1                  # the dilated window would not fit the map
        log.append(f"Conv2D({channels},{k},{pad},d{dilation},{act})")
        return L.Conv2D(channels, k, padding=pad, dilation_rate=dilation, activation=act)(x)
    if kind == "conv_stride":
        stride = (int(rng.choice([1, 2])), 2)
        log.append(f"Conv2D({channels},{k},{pad},s{stride},{act})")
        return L.Conv2D(channels, k, strides=stride, padding=pad, activation=act)(x)
    if kind == "dw":
        mult = int(rng.choice([1, 2]))
        stride = int(rng.choice([1, 2])) if not small else 1
        log.append(f"DepthwiseConv2D({k},{pad},s{stride},m{mult},{act})")
        return L.DepthwiseConv2D(k, strides=stride, padding=pad, depth_multiplier=mult,
                                 activation=act)(x)
    if kind == "sep":
        log.append(f"SeparableConv2D({channels},{k},{pad},{act})")
        return L.SeparableConv2D(channels, k, padding=pad, activation=act)(x)
    if kind == "bn":
        log.append(f"Conv2D({channels},{k},same)+BatchNormalization+{act}")
        y = L.Conv2D(channels, k, padding="same", use_bias=bool(rng.integers(2)))(x)
        return L.Activation(act)(L.BatchNormalization()(y)) if act != "linear" else \
            L.BatchNormalization()(y)
    if kind == "act":
        name = str(rng.choice(_ACTIVATIONS))
        log.append(f"standalone {name}")
        return _activation_layer(L, name, rng)(x)
    if kind == "add":
        log.append(f"Add(Conv2D({c},{k},same,{act}), skip)")
        return L.Add()([L.Conv2D(c, k, padding="same", activation=act)(x), x])
    if kind == "concat":
        log.append(f"Concatenate(Conv2D({channels},{k},same,{act}), input)")
        return L.Concatenate()([L.Conv2D(channels, k, padding="same", activation=act)(x), x])
    if kind == "zeropad":
        p = ((int(rng.integers(0, 2)), int(rng.integers(1, 3))), (int(rng.integers(1, 3)), 0))
        log.append(f"ZeroPadding2D({p})")
        return L.ZeroPadding2D(p)(x)
    pool = int(rng.choice([2, 3]))
    stride = int(rng.choice([1, 2]))
    layer = L.MaxPooling2D if kind == "maxpool" else L.AveragePooling2D
    log.append(f"{layer.__name__}({pool},s{stride},{pad})")
    return layer(pool, strides=stride, padding=pad)(x)


def build(seed, *, wide=False):
    """Return ``(keras_model, calibration_rows, description)`` of fuzz model ``seed``.

    ``wide``: 4x the channels and maps 12 larger (tiles over the device's rows and columns,
    weights streamed on the small presets); the same layer choices otherwise.
    """
    from make_tflite_fixtures import _randomise
    tf = _tf()
    L = tf.keras.layers
    rng = np.random.default_rng(seed)
    width, grow = (4, 12) if wide else (1, 0)
    shape = (int(rng.integers(5, 11)) + grow, int(rng.integers(5, 11)) + grow,
             int(rng.integers(1, 4)) * width)
    inp = tf.keras.Input(shape, batch_size=1, name="input")
    log = [f"Input{shape}"]
    # A second stream adds version-2 extras without changing the first stream's choices.
    extra = np.random.default_rng([seed, 2])
    x = inp
    for _ in range(int(rng.integers(2, 6))):
        x = _block(L, x, rng, log, width)
        if log[-1].startswith(("Add(", "Concatenate(")) and extra.random() < 0.5:
            name = str(extra.choice(_ACTIVATIONS))     # after a merge: in/out scales differ
            log.append(f"standalone {name}")
            x = _activation_layer(L, name, extra)(x)
    head = str(rng.choice(["gap", "flatten", "reshape"]))
    if head == "gap":
        x = L.GlobalAveragePooling2D()(x)
    elif head == "flatten":
        x = L.Flatten()(x)
    else:
        x = L.Reshape((-1,))(x)
    units = int(rng.integers(2, 9))
    softmax = bool(rng.integers(2))
    if extra.random() < 0.4:
        hidden, act = int(extra.integers(3, 12)), str(extra.choice(_ACTIVATIONS[:4]))
        log.append(f"{head} -> Dense({hidden},{act})")
        x = L.Dense(hidden, activation=act)(x)
        head = ""
    log.append(f"{head} -> Dense({units})".lstrip(" ->") + (" -> Softmax" if softmax else ""))
    x = L.Dense(units)(x)
    if softmax:
        x = L.Softmax()(x)
    model = tf.keras.Model(inp, x, name=f"fuzz{seed}{'w' if wide else ''}")
    _randomise(model, seed)
    rows = np.random.default_rng(seed + 1).uniform(-1.0, 1.0, (32, *shape)).astype(np.float32)
    return model, rows, " -> ".join(log)


def describe(seed, *, wide=False):
    """Return the layer list of fuzz model ``seed`` (builds the Keras model)."""
    return build(seed, wide=wide)[2]


def convert_cached(seed, cache_dir, *, wide=False):
    """Return ``(tflite_bytes, description)`` of model ``seed``, converted once per cache dir."""
    path = Path(cache_dir) / f"fuzz{seed}{'w' if wide else ''}-v{VERSION}.tflite"
    note = path.with_suffix(".txt")
    if path.exists() and note.exists():
        return path.read_bytes(), note.read_text()
    from tessera.quantize.tflite_convert import keras_to_int8_tflite
    model, rows, text = build(seed, wide=wide)
    data = keras_to_int8_tflite(model, rows)
    path.write_bytes(data)
    note.write_text(text)
    return data, text


def _tflm(data, x_q):
    from tflite_micro.python.tflite_micro import runtime as tflm
    interpreter = tflm.Interpreter.from_bytes(data, arena_size=1 << 23)
    outputs = []
    for row in x_q:
        interpreter.set_input(row[None], 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0)[0].copy())
    return np.stack(outputs)


def operators(data):
    """Return the TFLite operator names of a converted model, in order."""
    from tessera.quantize.tflite_reader import TFLiteReader, read_tflite
    r = TFLiteReader(*read_tflite(data))
    return [r.op_names[op.opcodeIndex] for op in r.graph.operators or []]


def check(data, *, seed=0, rows=8, preset=PRESET):
    """Check one converted model; return ``("equal" | "refused" | "too_large", detail)``.

    ``rows`` random int8 inputs follow the extremes, a checkerboard, a ramp and zeros; the
    emulated device runs with the CNN preset ``preset`` or, if the model does not fit it
    (:class:`~tessera.compiler.ModelTooLarge`), the next larger preset it fits ("too_large":
    none; ``predict`` was still checked). ``preset=None``: ``predict`` only.

    Raises
    ------
    AssertionError
        ``predict`` or the emulated device differs from TFLite Micro, or a refusal does not
        name an operator.
    """
    import tessera
    from tessera.compiler import ModelTooLarge
    from tessera.compiler.presets import CNN_PRESETS, get_preset
    from test_keras_real import int8_inputs
    try:
        qmodel = tessera.load_model(data, mode="tflite")
    except tessera.UnsupportedModelError as exc:
        assert re.search(r"operator \d+ \([A-Z0-9_:]+", str(exc)), f"names no operator: {exc}"
        return "refused", str(exc)
    x_q = int8_inputs(qmodel.input_shape, seed=seed, random_rows=rows)
    expected = _tflm(data, x_q)
    got = qmodel.predict(x_q, raw=True)
    np.testing.assert_array_equal(got, expected, err_msg="predict differs from TFLite Micro")
    if preset is None:
        return "equal", f"{len(x_q)} inputs, predict"
    # The preset asked for, else the next larger one the model fits.
    sizes = {name: p.memory_bytes for name, p in CNN_PRESETS.items()}
    larger = sorted((n for n in sizes if sizes[n] > sizes[preset]), key=sizes.get)
    for name in [preset, *larger]:
        try:
            with tessera.connect("emu", config=get_preset(name).config) as dev:
                on_device = dev.run(qmodel, x_q, raw=True)
        except ModelTooLarge as exc:
            too_large = str(exc)
            continue
        np.testing.assert_array_equal(on_device, expected,
                                      err_msg=f"connect('emu', {name}).run differs from TFLM")
        return "equal", f"{len(x_q)} inputs, predict and {name}"
    return "too_large", too_large
