"""A compiled CNN on the RTL (``connect("sim")``, ISA version 3) equals the emulator exactly.

A small DAG built with ``tests/tflite_builder.py`` has every layer kind of the ``CONV``
instruction and the ``ADD``: a SAME 3x3 convolution with stride 1 and another with stride 2, a
depthwise SAME convolution with dilation 2 and depth multiplier 2, a 1x1 projection, a residual
ADD with relu, a SAME max pool and a SAME average pool (border pixels with fewer taps), and a
dense layer. It runs on small ``cnn`` configurations (4 rows x 2 columns, ACT banks of one and of
two lanes) through the real host driver into the Verilated RTL and into the emulator: the
outputs are identical for every input (and equal TFLite Micro's), and so is every counter
(cycles, compute, stall, MACs, link bytes) after the run.
"""

import numpy as np
import pytest
from tflite_builder import TFLiteGraph, run_tflm

import tessera
from sim_helpers import CNN_CONFIGS
from tessera.compiler import compile_graph

RNG = np.random.default_rng(1515)


def _weights(shape):
    return RNG.integers(-127, 128, size=shape).astype(np.int8)


def _graph():
    g = TFLiteGraph()
    x = g.input("x", (1, 7, 6, 2), scale=0.04, zero_point=-5)
    c = g.conv2d(x, _weights((4, 3, 3, 2)), RNG.integers(-900, 900, 4), name="conv",
                 w_scale=np.linspace(0.004, 0.01, 4), y_scale=0.05, y_zero_point=-128,
                 padding="same", activation="relu")
    s = g.conv2d(c, _weights((4, 3, 3, 4)), RNG.integers(-900, 900, 4), name="down",
                 w_scale=0.006, y_scale=0.07, y_zero_point=-10, stride=2, padding="same",
                 activation="relu")
    d = g.depthwise_conv2d(s, _weights((1, 3, 3, 8)), RNG.integers(-500, 500, 8),
                           w_scale=np.linspace(0.01, 0.03, 8), y_scale=0.07, y_zero_point=-20,
                           depth_multiplier=2, dilation=2, padding="same", name="dw")
    e = g.conv2d(d, _weights((4, 1, 1, 8)), None, w_scale=0.004, y_scale=0.06,
                 y_zero_point=3, name="project")
    f = g.add(s, e, y_scale=0.08, y_zero_point=-128, activation="relu", name="residual")
    m = g.max_pool2d(f, pool=(3, 3), stride=1, padding="same", name="maxpool")
    a = g.average_pool2d(m, pool=(2, 3), stride=2, padding="same", name="avgpool")
    flat = g.reshape(a, (1, -1), name="flatten")
    return g, g.fully_connected(flat, _weights((5, g.shape(flat)[1])),
                                RNG.integers(-300, 300, 5), w_scale=0.01, y_scale=0.1,
                                y_zero_point=2)


@pytest.fixture(scope="module")
def cnn():
    g, out = _graph()
    model = g.build([out])
    qgraph = tessera.load_model(model, mode="tflite")
    shape = qgraph.graph.tensor(qgraph.graph.inputs[0]).shape
    x = RNG.integers(-128, 128, size=(6,) + tuple(shape)).astype(np.int8)
    x[0], x[1] = -128, 127
    expected = np.stack([run_tflm(model, [sample[None]])[0][0] for sample in x])
    return qgraph, x, expected


def _run(target, config, qgraph, x):
    with tessera.connect(target, config=config) as dev:
        dev.clear_counters()
        y = dev.run(qgraph, x, raw=True)
        return y, dev.counters()


@pytest.mark.parametrize("name", CNN_CONFIGS)
def test_cnn_on_the_rtl_equals_the_emulator(cnn, name):
    qgraph, x, expected = cnn
    config = CNN_CONFIGS[name]
    kinds = {(s.kind, s.where) for s in compile_graph(qgraph, config).steps}
    assert {("CONV_2D", "device"), ("DEPTHWISE_CONV_2D", "device"), ("ADD", "device"),
            ("MAX_POOL_2D", "device"), ("AVERAGE_POOL_2D", "device"),
            ("FULLY_CONNECTED", "device")} <= kinds, kinds
    want, emu_counters = _run("emu", config, qgraph, x)
    np.testing.assert_array_equal(want, expected)
    got, rtl_counters = _run("sim", config, qgraph, x)
    np.testing.assert_array_equal(got, want)
    assert rtl_counters == emu_counters
