"""LiteRT's reference kernels (``BUILTIN_REF``, ai-edge-litert 2.3) equal TFLite Micro on CNNs.

The same single-operator int8 graphs (``tests/tflite_builder.py``) run in TFLite Micro and in
LiteRT's ``BUILTIN_REF`` resolver: the ``BUILTIN_REF`` column of docs/numerics.md ("CNN
operators in mode tflite"). LiteRT's default interpreter (XNNPACK) is measured by
``tests/test_litert_cnn.py``.
"""

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite_builder import TFLiteGraph, run_tflm

RESOLVERS = {"BUILTIN_REF": OpResolverType.BUILTIN_REF}


def _litert(model, xs, resolver):
    interpreter = Interpreter(model_content=model, num_threads=1,
                              experimental_op_resolver_type=RESOLVERS[resolver])
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), xs):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _graph(kind, rng):
    """Return ``(model bytes, inputs)``: one operator on saturating and random int8 inputs."""
    x = rng.integers(-128, 128, (4, 12, 11, 8)).astype(np.int8)
    x[1], x[2] = -128, 127
    g = TFLiteGraph()
    xi = g.input("x", x.shape, scale=float(10 ** rng.uniform(-2.5, 0)),
                 zero_point=int(rng.integers(-128, 128)))
    out = dict(y_scale=float(10 ** rng.uniform(-2.5, 0)),
               y_zero_point=int(rng.integers(-128, 128)))
    xs = [x]
    if kind == "CONV_2D":
        w = rng.integers(-127, 128, (6, 3, 3, 8)).astype(np.int8)
        y = g.conv2d(xi, w, rng.integers(-20000, 20000, 6).astype(np.int32),
                     w_scale=(10.0 ** rng.uniform(-3.5, -1, 6)).astype(np.float32), **out,
                     stride=int(rng.integers(1, 3)), padding="same")
    elif kind == "DEPTHWISE_CONV_2D":
        # LiteRT 2.3's optimized depthwise kernel crashes without a bias tensor: give one.
        w = rng.integers(-127, 128, (1, 3, 3, 16)).astype(np.int8)
        y = g.depthwise_conv2d(xi, w, rng.integers(-3000, 3000, 16).astype(np.int32),
                               w_scale=(10.0 ** rng.uniform(-3.5, -1, 16)).astype(np.float32),
                               **out, depth_multiplier=2, stride=int(rng.integers(1, 3)),
                               padding="same")
    elif kind == "AVERAGE_POOL_2D":
        y = g.average_pool2d(xi, pool=int(rng.integers(2, 5)), stride=int(rng.integers(1, 3)),
                             padding="same")
    elif kind == "MAX_POOL_2D":
        y = g.max_pool2d(xi, pool=3, stride=2, padding="same")
    elif kind == "MEAN":
        y = g.mean_hw(xi, **out)
    elif kind == "ADD":
        xs.append(rng.integers(-128, 128, x.shape).astype(np.int8))
        zi = g.input("z", x.shape, scale=float(10 ** rng.uniform(-2.5, 0)),
                     zero_point=int(rng.integers(-128, 128)))
        y = g.add(xi, zi, **out)
    else:
        y = g.softmax(g.reshape(xi, (-1, 8)), beta=float(rng.uniform(0.2, 2)))
    return g.build([y]), xs


def _mismatches(kind, resolver, seeds=range(6)):
    total = 0
    for seed in seeds:
        model, xs = _graph(kind, np.random.default_rng(seed))
        total += int((_litert(model, xs, resolver) != run_tflm(model, xs)[0]).sum())
    return total


@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
                                  "MAX_POOL_2D", "MEAN", "ADD", "SOFTMAX"])
def test_litert_reference_kernels_equal_tflite_micro(kind):
    assert _mismatches(kind, "BUILTIN_REF") == 0
