"""Build small Keras CNNs with the real ``tf.keras`` and convert them with the real
``TFLiteConverter`` (full-integer int8, int8 input and output) into ``tests/data/tflite_cnn/``.

Run ``.venv/bin/python tests/make_tflite_fixtures.py`` (TensorFlow from the ``keras`` extra) to
rewrite the committed fixtures; ``tests/test_keras_real.py`` regenerates them in a temporary
directory and checks the committed files still run the same. Weights are drawn from a seeded
generator (not trained: the converter only needs them non-degenerate), so each build is
reproducible. Between them the fixtures cover CONV_2D (SAME, asymmetric SAME, VALID, dilation),
DEPTHWISE_CONV_2D (stride 2, depth multiplier 2, dilation), MAX_POOL_2D, AVERAGE_POOL_2D (with a
padded border), MEAN (global average pool), ADD (residual), CONCATENATION, FULLY_CONNECTED,
SOFTMAX and a folded BatchNormalization.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from tessera.quantize.tflite_convert import keras_to_int8_tflite

__all__ = ["FIXTURES", "FIXTURE_DIR", "build", "calibration_rows", "convert", "write_fixtures"]

#: Where the committed fixtures live.
FIXTURE_DIR = Path(__file__).parent / "data" / "tflite_cnn"

#: Rows of the representative data set given to the converter.
CALIBRATION_ROWS = 64


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")   # TensorFlow's C++ start-up banner
    import tensorflow as tf
    return tf


def _pools(layers, inp):
    # 11x11: odd sizes make SAME pad one side only; the 3x3/2 average pool pads its border.
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv_same")(inp)
    x = layers.MaxPooling2D(2, strides=2, padding="same", name="maxpool_same")(x)
    x = layers.Conv2D(8, 3, padding="valid", activation="relu6", name="conv_valid")(x)
    x = layers.AveragePooling2D(3, strides=2, padding="same", name="avgpool_border")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(5, name="dense")(x)
    return layers.Softmax(name="softmax")(x)


def _depthwise(layers, inp):
    # 12x12 with stride 2: TensorFlow's SAME pads (0, 1), the extra row/column at the end.
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                               name="dw_stride2")(inp)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.Conv2D(8, 3, dilation_rate=2, padding="same", activation="relu",
                      name="conv_dilated")(x)
    x = layers.DepthwiseConv2D(3, dilation_rate=2, padding="valid", name="dw_dilated")(x)
    x = layers.GlobalAveragePooling2D(name="mean")(x)
    return layers.Dense(4, name="dense")(x)


def _residual(layers, inp):
    a = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(inp)
    b = layers.Conv2D(8, 3, padding="same", name="conv_b")(a)
    b = layers.BatchNormalization(name="bn_b")(b)
    r = layers.Add(name="residual_add")([b, a])
    r = layers.Activation("relu", name="add_relu")(r)
    c1 = layers.Conv2D(4, 1, name="conv_1x1")(r)
    c2 = layers.MaxPooling2D(3, strides=1, padding="same", name="maxpool_s1")(r)
    c = layers.Concatenate(name="concat")([c1, c2])
    c = layers.AveragePooling2D(2, name="avgpool")(c)
    c = layers.GlobalAveragePooling2D(name="mean")(c)
    c = layers.Dense(3, name="dense")(c)
    return layers.Softmax(name="softmax")(c)


#: name -> (per-sample input shape NHWC, builder of the functional graph).
FIXTURES = {
    "pools": ((11, 11, 2), _pools),
    "depthwise": ((12, 12, 3), _depthwise),
    "residual": ((8, 8, 4), _residual),
}


def _randomise(model, seed):
    # Non-zero biases and BatchNorm statistics make the folded parameters discriminating.
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for weight in layer.weights:
            shape, name = tuple(weight.shape), weight.path.rsplit("/", 1)[-1]
            if name in ("gamma", "moving_variance"):
                values.append(rng.uniform(0.5, 1.5, shape))
            elif name in ("bias", "beta", "moving_mean"):
                values.append(rng.normal(0.0, 0.2, shape))
            else:                                  # kernels: fan-in scaled
                fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
                values.append(rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape))
        if values:
            layer.set_weights([v.astype(np.float32) for v in values])


def build(name, *, seed=0):
    """Return the Keras model of fixture ``name`` with seeded weights (batch size 1)."""
    tf = _keras()
    shape, body = FIXTURES[name]
    inp = tf.keras.Input(shape, batch_size=1, name="input")
    model = tf.keras.Model(inp, body(tf.keras.layers, inp), name=name)
    _randomise(model, seed)
    return model


def calibration_rows(name, rows=CALIBRATION_ROWS, *, seed=1):
    """Return the float32 representative inputs ``[rows, *shape]`` of fixture ``name``."""
    shape = FIXTURES[name][0]
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (rows, *shape)).astype(np.float32)


def convert(model, rows):
    """Return the full-integer int8 ``.tflite`` bytes of ``model`` calibrated on ``rows``.

    int8 input and output, only int8 builtin operators; one representative sample per row,
    batch size 1 (:func:`tessera.quantize.tflite_convert.keras_to_int8_tflite`).
    """
    return keras_to_int8_tflite(model, rows)


def write_fixtures(directory=FIXTURE_DIR, names=None):
    """Build, convert and write ``<name>.tflite`` for each fixture; return the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or FIXTURES:
        path = directory / f"{name}.tflite"
        path.write_bytes(convert(build(name), calibration_rows(name)))
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURE_DIR,
                        help=f"output directory (default {FIXTURE_DIR})")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"fixtures to build: {', '.join(FIXTURES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(FIXTURES))
    if unknown:
        parser.error(f"unknown fixture(s) {', '.join(unknown)}; choose from {', '.join(FIXTURES)}")
    for path in write_fixtures(args.out, args.names):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
