"""Compiled graphs keep ISA version 3's single-port rule (docs/isa.md, "Version 3", "Ordering").

No ``ADD`` and no streamed weight ``LOAD`` while a ``CONV`` is in flight, even when they touch
none of its regions: a convolution, then an ``ADD`` of the input with itself; a streamed
convolution of the input after a resident one of another map. Only the rule needs the ``SYNC``
before them; the emulator refuses the program without it. TFLite Micro is the oracle, and every
``SYNC`` must be needed.
"""

import dataclasses

import numpy as np
import pytest
from tflite_builder import TFLiteGraph, run_tflm

import tessera
from graph_helpers import assert_every_sync_is_needed
from tessera.compiler import compile_graph
from tessera.spec import AcceleratorConfig, isa

RNG = np.random.default_rng(1515)
CONFIG = AcceleratorConfig(rows=4, cols=2, act_depth=1024, weight_depth=1024, param_depth=64,
                           cnn=True, requant_modes=("tflite",))


def _conv(g, x, out_c, name, kernel=3):
    in_c = g.shape(x)[3]
    w = RNG.integers(-127, 128, size=(out_c, kernel, kernel, in_c)).astype(np.int8)
    return g.conv2d(x, w, RNG.integers(-900, 900, out_c), w_scale=0.006, y_scale=0.07,
                    y_zero_point=-10, padding="same", activation="relu", name=name)


def _branches(kind):
    """kind "add": ``conv(x) + (x + x) + x``; kind "stream": ``conv1x1(a) + conv(x) + a`` with
    ``a = conv(x)``, the 3x3 weights streamed into one WGT region, the 1x1 ones resident. The
    last ADD keeps a map live, so no later output may reuse its region."""
    g = TFLiteGraph()
    x = g.input("x", (1, 6, 5, 4), scale=0.05, zero_point=3)
    a = _conv(g, x, 4, "a")
    if kind == "add":
        a, b, keep = a, g.add(x, x, y_scale=0.09, y_zero_point=-7, name="twice"), x
    else:
        a, b, keep = _conv(g, a, 4, "project", kernel=1), _conv(g, x, 4, "b"), a
    total = g.add(a, b, y_scale=0.1, y_zero_point=1, name="sum")
    return g.build([g.add(total, keep, y_scale=0.12, y_zero_point=-2, name="out")])


def _operations(compiled):
    """Return the instruction names of one inference but WINDOW and POST."""
    insns = isa.decode_program(b"".join(compiled.frames), compiled.config)
    return [type(i).__name__ for i in insns if not isinstance(i, (isa.Window, isa.Post))]


@pytest.mark.parametrize("kind, weight_depth", [("add", 1024), ("stream", 80)])
def test_branches_beside_a_convolution_wait_for_it(kind, weight_depth):
    model = _branches(kind)
    qgraph = tessera.load_model(model, mode="tflite")
    config = dataclasses.replace(CONFIG, weight_depth=weight_depth)
    compiled = compile_graph(qgraph, config)
    ops = _operations(compiled)
    if kind == "add":       # the ADD x + x touches nothing the CONV does
        assert ops == ["Conv", "Sync", "Add", "Sync", "Add", "Sync", "Add", "Store"]
    else:                   # b's weights go where only a's were: the 1x1 CONV reads elsewhere
        assert sorted(compiled.plan.streamed) == [0, 2]
        assert ops == ["Load", "Conv", "Sync", "Conv", "Sync", "Load", "Conv", "Sync", "Add",
                       "Sync", "Add", "Store"]
    x = RNG.integers(-128, 128, size=(12, 6, 5, 4)).astype(np.int8)
    x[0], x[1] = -128, 127
    expected = np.stack([run_tflm(model, [s[None]])[0][0] for s in x])
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, x, raw=True), expected)
    assert_every_sync_is_needed(compiled, x[0])
