"""The worked example through real Keras: train a one-unit Dense, quantize it, run it on a device.

Needs TensorFlow (``pip install 'tessera-fpga[keras]'``, or ``pip install -e '.[keras]'`` in a
checkout). Fits y = 3*x0 + 2*x1 + noise with SGD and MSE in ``tf.keras``, then compares the mean
squared error of

* the float Keras model,
* ``tessera.quantize(keras_model, calibration=x)`` run on the device (int8, Tessera's quantizer),
* the same Keras model converted by ``TFLiteConverter`` to a full-integer int8 ``.tflite``
  (``tessera.quantize.keras_to_int8_tflite``) and loaded with ``tessera.load_model`` (the
  converter's own quantization, parameters kept exactly; bit-identical to LiteRT's interpreter
  in the default mode).

Run it with ``python examples/keras_linear_regression.py [--device emu|sim|serial://...]``.
"""

import argparse
import os

import numpy as np

import tessera


def make_data(seed=0, n=100):
    """Return (x [n, 2] float32 uniform in [-1, 1], y [n] float32 = 3*x0 + 2*x1 + noise)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 2)).astype(np.float32)
    y = (3.0 * x[:, 0] + 2.0 * x[:, 1] + rng.normal(0.0, 0.1, size=n)).astype(np.float32)
    return x, y


def train_keras(x, y, *, seed=0, epochs=20):
    """Return a ``tf.keras`` Sequential ``[Dense(1)]`` fitted with SGD on the MSE."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")   # TensorFlow's C++ start-up banner
    import tensorflow as tf
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    model.fit(x, y, batch_size=10, epochs=epochs, shuffle=True, verbose=0)
    return model


def run(device="emu"):
    """Train, quantize both ways, run on ``device``; return the figures printed by ``main``."""
    x, y = make_data()
    model = train_keras(x, y)
    kernel, bias = model.layers[0].get_weights()
    y_float = model(x).numpy()[:, 0]

    qmodel = tessera.quantize(model, calibration=x)            # Tessera's own quantizer
    tflite_bytes = tessera.quantize.keras_to_int8_tflite(model, x)
    tflite = tessera.load_model(tflite_bytes)                   # the converter's quantization
    with tessera.connect(device) as dev:
        y_int8 = dev.run(qmodel, x)[:, 0]
        y_tflite = dev.run(tflite, x)[:, 0]
    mse = lambda pred: float(np.mean((pred - y) ** 2))        # noqa: E731
    return {"weights": (float(kernel[0, 0]), float(kernel[1, 0]), float(bias[0])),
            "mse_float": mse(y_float), "mse_int8": mse(y_int8), "mse_tflite": mse(y_tflite),
            "identical_int8": bool(np.array_equal(y_int8, qmodel.predict(x)[:, 0])),
            "identical_tflite": bool(np.array_equal(y_tflite, tflite.predict(x)[:, 0])),
            "x": x, "tflite_model": tflite_bytes, "y_tflite": y_tflite}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="emu", help="tessera.connect target (default emu)")
    args = parser.parse_args(argv)
    figures = run(args.device)
    w0, w1, b = figures["weights"]
    print(f"Keras learned  y = {w0:.3f}*x0 + {w1:.3f}*x1 + {b:.3f}")
    print(f"MSE float (Keras)                  {figures['mse_float']:.5f}")
    print(f"MSE int8, tessera.quantize         {figures['mse_int8']:.5f}  ({args.device})")
    print(f"MSE int8, TFLiteConverter -> load  {figures['mse_tflite']:.5f}  ({args.device})")
    print(f"device identical to predict(): {figures['identical_int8']} (tessera.quantize), "
          f"{figures['identical_tflite']} (TFLiteConverter)")
    return figures


if __name__ == "__main__":
    main()
