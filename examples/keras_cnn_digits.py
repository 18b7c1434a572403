"""Post-training quantization of a Keras CNN: Tessera's quantizer next to TFLiteConverter's.

Needs TensorFlow and scikit-learn (``pip install 'tessera-fpga[keras,sklearn]'``, or
``pip install -e '.[keras,sklearn]'`` in a checkout). Trains a small functional CNN (Conv2D +
BatchNormalization + ReLU, MaxPooling2D, DepthwiseConv2D, a residual Add, Flatten, Dense) on the
8x8 digits images in ``tf.keras``, then prints the test accuracy of

* the float Keras model,
* ``tessera.quantize(model, calibration=x)`` in mode ``"onnx"`` and ``"tflite"`` (a
  :class:`tessera.graph.QuantizedGraph`, per-channel int8 weights),
* the model converted by ``TFLiteConverter`` (full-integer int8,
  ``tessera.quantize.keras_to_int8_tflite``) and loaded with
  ``tessera.load_model(..., mode="tflite")``, which computes what TFLite Micro computes.

Run it with ``python examples/keras_cnn_digits.py``.
"""

import os

import numpy as np

import tessera


def digits():
    """Return (x_train, y_train, x_test, y_test): 8x8x1 images in [0, 1], labels 0-9."""
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    return x[:1200], y[:1200], x[1200:], y[1200:]


def train_cnn(x, y, *, seed=0, epochs=12):
    """Return a trained ``tf.keras`` functional CNN with a residual block."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")   # TensorFlow's C++ start-up banner
    import tensorflow as tf
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((8, 8, 1))
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(inp)))
    h = L.MaxPooling2D(2)(h)                                           # 4x4x16
    r = L.DepthwiseConv2D(3, padding="same", activation="relu")(h)
    r = L.Conv2D(16, 1)(r)
    h = L.ReLU()(L.Add()([h, r]))                                      # residual
    out = L.Dense(10)(L.Flatten()(h))
    model = tf.keras.Model(inp, out)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return model


def run():
    """Train, quantize three ways; return ``{name: (test accuracy, mean |logit - float|)}``."""
    x_train, y_train, x_test, y_test = digits()
    model = train_cnn(x_train, y_train)
    calibration = x_train[:300]
    reference = model(x_test).numpy()

    def measure(logits):
        return (float(np.mean(np.argmax(logits, 1) == y_test)),
                float(np.mean(np.abs(logits - reference))))

    results = {"float (Keras)": measure(reference)}
    for mode in ("onnx", "tflite"):
        qmodel = tessera.quantize(model, calibration=calibration, mode=mode)
        results[f"int8 tessera.quantize, mode {mode!r}"] = measure(qmodel.predict(x_test))
    tflite_bytes = tessera.quantize.keras_to_int8_tflite(model, calibration)
    converted = tessera.load_model(tflite_bytes, mode="tflite")
    results["int8 TFLiteConverter, mode 'tflite'"] = measure(converted.predict(x_test))
    return results


def main():
    results = run()
    for name, (accuracy, error) in results.items():
        print(f"{name:38s} test accuracy {accuracy:.4f}  mean |logit - float| {error:.4f}")
    return results


if __name__ == "__main__":
    main()
