"""LiteRT's default interpreter (XNNPACK) against Tessera's modes on int8 CNN operators.

docs/numerics.md ("LiteRT's default interpreter on CNN operators") states, per operator, which
mode LiteRT's default interpreter equals ("onnx", "tflite" or neither). This test reads that
table and holds it true: a single-operator int8 ``.tflite`` (``tests/tflite_builder.py``) is
imported with :func:`tessera.load_model` in the mode the table names and must equal LiteRT bit
for bit; for every mode the table does not name, the same inputs must show a difference (so the
inputs discriminate and the table cannot silently go stale).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import tessera
from tessera.numerics import ops_onnx, ops_tflite
from tflite_builder import TFLiteGraph

F32 = np.float32
NUMERICS = Path(__file__).resolve().parents[1] / "docs" / "numerics.md"
SECTION = "## LiteRT's default interpreter on CNN operators"
MODES = ("onnx", "tflite")


def _table():
    """Return ``{operator: "onnx" | "tflite" | "neither" | "both"}`` from docs/numerics.md."""
    text = NUMERICS.read_text()
    assert SECTION in text, f"docs/numerics.md lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_0-9]+)` \| (`\"onnx\"`|`\"tflite\"`|neither|both) \|", section,
                      re.MULTILINE)
    return {op: claim.strip('`"') for op, claim in rows}


def _litert(model, x):
    interpreter = Interpreter(model_content=model, num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))      # the whole batch at once
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def _input(shape, seed):
    x = np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)
    x[0], x[1] = 127, -128
    return x


def _conv(depthwise):
    rng = np.random.default_rng(3)
    g = TFLiteGraph()
    x = g.input("x", (1, 9, 8, 5), scale=0.043, zero_point=-7)
    c = 10 if depthwise else 6
    w_q = rng.integers(-127, 128, (1, 3, 3, c) if depthwise else (c, 3, 3, 5)).astype(np.int8)
    bias = rng.integers(-2000, 2000, c).astype(np.int32)
    w_scale = rng.uniform(0.001, 0.01, c).astype(F32)
    args = dict(w_scale=w_scale, y_scale=0.11, y_zero_point=4, stride=(2, 1), dilation=(1, 2),
                padding="same")
    y = g.depthwise_conv2d(x, w_q, bias, depth_multiplier=2, **args) if depthwise \
        else g.conv2d(x, w_q, bias, **args)
    return g.build([y]), _input((64, 9, 8, 5), 4)


def _average_pool():
    g = TFLiteGraph()
    x = g.input("x", (1, 9, 8, 5), scale=0.037, zero_point=3)
    y = g.average_pool2d(x, pool=(2, 2), stride=(1, 1), padding="same")
    return g.build([y]), _input((64, 9, 8, 5), 5)


def _softmax():
    # Found by search: mode "tflite" differs from LiteRT in 2 of these 65,536 outputs.
    g = TFLiteGraph()
    x = g.input("x", (1, 16), scale=0.0412, zero_point=17)
    return g.build([g.softmax(x)]), _input((4096, 16), 9)


def _mean():
    # Found by search (seed 141): both modes differ from LiteRT here.
    g = TFLiteGraph()
    x = g.input("x", (1, 5, 9, 9), scale=0.07931858, zero_point=-17)
    y = g.mean_hw(x, y_scale=0.013317688, y_zero_point=-25)
    return g.build([y]), _input((256, 5, 9, 9), 141)


def _max_pool():
    g = TFLiteGraph()
    x = g.input("x", (1, 9, 8, 5), scale=0.05, zero_point=-1)
    y = g.max_pool2d(x, pool=(3, 3), stride=(2, 2), padding="same")
    return g.build([y]), _input((64, 9, 8, 5), 7)


MODELS = {"CONV_2D": lambda: _conv(False), "DEPTHWISE_CONV_2D": lambda: _conv(True),
          "AVERAGE_POOL_2D": _average_pool, "SOFTMAX": _softmax, "MEAN": _mean,
          "MAX_POOL_2D": _max_pool}


def test_the_table_names_every_measured_operator():
    assert set(_table()) == set(MODELS) | {"ADD"}


@pytest.mark.parametrize("op", sorted(MODELS))
def test_default_mode_holds_to_the_table(op):
    claim = _table()[op]
    model, x = MODELS[op]()
    expected = _litert(model, x)
    for mode in MODES:
        got = tessera.load_model(model, mode=mode).predict(x, raw=True)
        if claim in (mode, "both"):
            np.testing.assert_array_equal(got, expected, err_msg=f"{op} in mode {mode!r}")
        else:
            assert np.any(got != expected), f"{op} in mode {mode!r} equals LiteRT on these " \
                "inputs: the table says it does not (or the inputs do not discriminate)"
    if claim in MODES:     # the default mode of .tflite imports is "onnx"
        assert (claim == "onnx") == np.array_equal(
            tessera.load_model(model).predict(x, raw=True), expected)


def test_add_matches_neither_mode():
    # Two graph inputs: LiteRT against the kernels directly (the importer takes one input).
    assert _table()["ADD"] == "neither"
    pairs = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
    a = np.repeat(pairs, 256).reshape(1, 256, 256, 1)
    b = np.tile(pairs, 256).reshape(1, 256, 256, 1)
    q = dict(a_scale=F32(0.0875), a_zero_point=-49, b_scale=F32(0.1664), b_zero_point=36,
             y_scale=F32(0.0848), y_zero_point=12)       # found by search: 12 and 22 differ
    g = TFLiteGraph()
    ai = g.input("a", a.shape, scale=q["a_scale"], zero_point=q["a_zero_point"])
    bi = g.input("b", b.shape, scale=q["b_scale"], zero_point=q["b_zero_point"])
    model = g.build([g.add(ai, bi, y_scale=q["y_scale"], y_zero_point=q["y_zero_point"])])
    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    interpreter.set_tensor(inputs[0]["index"], a)
    interpreter.set_tensor(inputs[1]["index"], b)
    interpreter.invoke()
    expected = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    for ops in (ops_onnx, ops_tflite):
        assert np.any(ops.add(a, b, **q) != expected), ops.__name__
