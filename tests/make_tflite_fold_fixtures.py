"""Build Keras models with a dynamic batch and convert them with the real ``TFLiteConverter`` into
``tests/data/tflite_fold/``: each ``Flatten``/``Reshape`` becomes the converter's constant shape
arithmetic (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE) that ``tessera.quantize.tflite_fold``
folds at import.

Run ``.venv/bin/python tests/make_tflite_fold_fixtures.py`` (TensorFlow from the ``keras`` extra)
to rewrite the committed fixtures; ``tests/test_tflite_fold.py`` regenerates them in a temporary
directory and checks the bytes are the same. Seeded weights (as in ``make_tflite_fixtures.py``,
whose converter settings these share); the only difference is the batch size left dynamic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import make_tflite_fixtures as cnn_fixtures

__all__ = ["FIXTURES", "FIXTURE_DIR", "build", "calibration_rows", "write_fixtures"]

#: Where the committed fixtures live.
FIXTURE_DIR = Path(__file__).parent / "data" / "tflite_fold"


def _flatten_mlp(layers, inp):
    # A dense chain: imports as a QuantizedModel once the shape arithmetic is folded.
    x = layers.Flatten(name="flatten")(inp)
    x = layers.Dense(6, activation="relu", name="dense_relu")(x)
    return layers.Dense(3, name="dense")(x)


def _reshape_cnn(layers, inp):
    # A graph: Reshape to [16, 4] and Flatten both convert to SHAPE/STRIDED_SLICE/PACK.
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = layers.Reshape((16, 4), name="reshape")(x)
    x = layers.Flatten(name="flatten")(x)
    return layers.Dense(3, name="dense")(x)


#: name -> (per-sample input shape, builder of the functional graph).
FIXTURES = {
    "flatten_mlp": ((4, 5), _flatten_mlp),
    "reshape_cnn": ((6, 6, 2), _reshape_cnn),
}


def build(name, *, seed=0):
    """Return the Keras model of fixture ``name`` with seeded weights and a dynamic batch."""
    tf = cnn_fixtures._keras()
    shape, body = FIXTURES[name]
    inp = tf.keras.Input(shape, name="input")            # batch_size None: dynamic
    model = tf.keras.Model(inp, body(tf.keras.layers, inp), name=name)
    cnn_fixtures._randomise(model, seed)
    return model


def calibration_rows(name, rows=cnn_fixtures.CALIBRATION_ROWS, *, seed=1):
    """Return the float32 representative inputs ``[rows, *shape]`` of fixture ``name``."""
    shape = FIXTURES[name][0]
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (rows, *shape)).astype(np.float32)


def write_fixtures(directory=FIXTURE_DIR, names=None):
    """Build, convert and write ``<name>.tflite`` for each fixture; return the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or FIXTURES:
        path = directory / f"{name}.tflite"
        path.write_bytes(cnn_fixtures.convert(build(name), calibration_rows(name)))
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURE_DIR,
                        help=f"output directory (default {FIXTURE_DIR})")
    args = parser.parse_args(argv)
    for path in write_fixtures(args.out):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
