"""Convert a Keras model to the full-integer int8 ``.tflite`` that Tessera imports exactly.

TensorFlow's ``TFLiteConverter`` with the settings :func:`tessera.load_model` expects: default
optimisations, a representative data set (one sample per row, batch 1), int8 builtin operators
only, int8 input and output. Other settings give float, dynamic-range (hybrid) or 16x8 models,
which the importer refuses. Used by the Keras examples and the test fixtures; needs TensorFlow
(the ``keras`` extra).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import numpy as np

__all__ = ["keras_to_int8_tflite"]


def keras_to_int8_tflite(model, calibration):
    """Return the full-integer int8 ``.tflite`` bytes of ``model`` calibrated on ``calibration``.

    Parameters
    ----------
    model : tf.keras.Model
    calibration : array_like
        Representative float inputs ``[rows, *input_shape]``; each row is given to the
        converter as one batch of 1.

    Returns
    -------
    bytes
        The ``.tflite`` flatbuffer (int8 input and output, int8 builtin operators).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")   # TensorFlow's C++ start-up banner
    import tensorflow as tf
    rows = np.asarray(calibration, np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in rows)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    # Keras prints where it saved the traced model; TF 2.21 warns that int8 inputs have no
    # statistics (the representative data sets them).
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return converter.convert()
