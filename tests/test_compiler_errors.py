"""What the compiler refuses, and the messages that say why and what to do."""

import re

import numpy as np
import pytest

import tessera.compiler as compiler
from tessera.compiler import (Program, StoreTarget, assemble_outputs, compile_gemm,
                              compile_model)
from tessera.quantize import QuantizedLayer, QuantizedModel
from tessera.spec import AcceleratorConfig

from compiler_helpers import make_model


def _layer(name, k, n, *, bias, activation="none", mode="onnx", zx=0, lut=None):
    extra = {}
    if activation == "lut":
        extra = dict(lut=lut, lut_input_scale=np.float32(0.05), lut_input_zero_point=0)
    return QuantizedLayer(
        name=name, weight=np.full((k, n), 127, dtype=np.int8),
        bias=np.full(n, bias, dtype=np.int32), input_scale=np.float32(0.02),
        input_zero_point=zx, weight_scale=np.full(n, 0.01, dtype=np.float32),
        output_scale=np.float32(0.5), output_zero_point=0, mode=mode, activation=activation,
        **extra)


def test_all_names_resolve():
    assert len(set(compiler.__all__)) == len(compiler.__all__)
    for name in compiler.__all__:
        assert getattr(compiler, name) is not None


def test_accumulator_overflow_names_layer_k_and_fix():
    model = QuantizedModel([_layer("dense_big", 1000, 4, bias=2_140_000_000)])
    with pytest.raises(OverflowError, match=r"^Layer 'dense_big' \(K=1000\): the int32 "
                       r"accumulator x @ w \+ bias can reach 2156129000 in magnitude.*"
                       r"Fix: requantize the layer"):
        compile_model(model, AcceleratorConfig())


def test_largest_safe_accumulator_is_accepted():
    # 127 * 127 * 1000 + bias = 2**31 - 1 exactly: provably fits, must compile
    bias = (1 << 31) - 1 - 127 * 127 * 1000
    model = QuantizedModel([_layer("edge", 1000, 2, bias=bias)])
    assert compile_model(model, AcceleratorConfig()).layers[0].acc_bound == (1 << 31) - 1


def test_unsupported_mode_names_config_field():
    model = QuantizedModel([_layer("fc", 4, 2, bias=0, mode="tflite")])
    config = AcceleratorConfig(requant_modes=("onnx",))
    with pytest.raises(ValueError, match=r"^Layer 'fc' uses requant mode 'tflite' but the "
                       r"accelerator configuration has requant_modes=\('onnx',\); add 'tflite' "
                       r"to AcceleratorConfig.requant_modes"):
        compile_model(model, config)


def test_lut_without_lut_hardware():
    lut = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
    model = QuantizedModel([_layer("act", 4, 2, bias=0, activation="lut", lut=lut)])
    with pytest.raises(ValueError, match=r"^Layer 'act' needs the activation lookup table but "
                       r"the accelerator configuration has lut=False; set "
                       r"AcceleratorConfig.lut=True"):
        compile_model(model, AcceleratorConfig(lut=False))


def test_layer_too_large_for_activation_buffer_names_act_depth():
    model = QuantizedModel([_layer("wide", 60, 10, bias=0)])
    with pytest.raises(ValueError, match=r"^Layer 'wide' needs K \+ N = 60 \+ 10 = 70 activation "
                       r"entries .* but act_depth is 64; raise AcceleratorConfig.act_depth to "
                       r"at least 70$"):
        compile_model(model, AcceleratorConfig(rows=2, cols=3, act_depth=64, max_payload=64))


def test_large_layers_are_streamed_not_refused():
    """Weights 100x more than the weight buffer still compile (streamed, K split)."""
    rng = np.random.default_rng(0)
    config = AcceleratorConfig(rows=2, cols=3, act_depth=64, weight_depth=4, param_depth=1,
                               max_payload=64)
    compiled = compile_model(make_model(rng, [40, 20], ["relu"]), config)
    assert not compiled.weights_resident
    assert compiled.allocation.layers[0].weights.k_parts[-1][1] == 2
    assert compiled.program(np.zeros((3, 40), dtype=np.int8)).frames


def test_not_a_model():
    with pytest.raises(TypeError, match=r"^compile_model needs a tessera QuantizedModel"):
        compile_model([(np.eye(2), np.zeros(2), "relu")], AcceleratorConfig())
    model = make_model(np.random.default_rng(1), [3, 2], ["none"])
    with pytest.raises(TypeError, match=r"^config must be an AcceleratorConfig, not dict$"):
        compile_model(model, {"rows": 8})


@pytest.mark.parametrize("x, shown", [
    (np.zeros((2, 5), dtype=np.int8), "int8 (2, 5)"),
    (np.zeros((2, 3), dtype=np.float32), "float32 (2, 3)"),
    (np.zeros((0, 3), dtype=np.int8), "int8 (0, 3)"),
    (np.zeros(3, dtype=np.int8), "int8 (3,)"),
])
def test_program_input_checked(x, shown):
    compiled = compile_model(make_model(np.random.default_rng(2), [3, 2], ["none"]),
                             AcceleratorConfig())
    with pytest.raises(ValueError, match=rf"^Program input must be a non-empty int8 array "
                       rf"\[M, 3\], not {re.escape(shown)}; quantize float data"):
        compiled.program(x)


def test_compile_gemm_checks_values():
    config = AcceleratorConfig()
    w = np.ones((4, 2), dtype=np.int8)
    with pytest.raises(ValueError, match=r"^Layer 'gemm': bias must be an int32 array of shape "
                       r"\(2,\), not int64 \(2,\)$"):
        compile_gemm(w, np.zeros(2, dtype=np.int64), 1 << 30, 0, config)
    with pytest.raises(ValueError, match=r"^Layer 'gemm': lo must not exceed hi"):
        compile_gemm(w, np.zeros(2, np.int32), 1 << 30, 0, config, lo=5, hi=4)
    with pytest.raises(ValueError, match=r"^Requant mode must be 'onnx' or 'tflite'"):
        compile_gemm(w, np.zeros(2, np.int32), 1 << 30, 0, config, mode="fp8")


def test_assemble_outputs_errors():
    program = Program(frames=[b"", b""], stores={1: StoreTarget(0, 2, 0, 3)}, out_shape=(2, 3),
                      macs=0, rows=4)
    with pytest.raises(ValueError, match=r"^No response for frame 1, which ends with a STORE"):
        assemble_outputs(program, {})
    with pytest.raises(ValueError, match=r"^Response of frame 1 is 5 bytes but its STORE returns "
                       r"3 entries x 4 bytes = 12$"):
        assemble_outputs(program, {1: b"12345"})
    data = bytes(range(12))
    out = assemble_outputs(program, {1: data})
    np.testing.assert_array_equal(out, [[0, 4, 8], [1, 5, 9]])
    short = Program(frames=[b""], stores={0: StoreTarget(0, 1, 0, 3)}, out_shape=(2, 3),
                    macs=0, rows=4)
    with pytest.raises(ValueError, match=r"^Output element \(1, 0\) is not written by any "
                       r"STORE"):
        assemble_outputs(short, {0: data})


def test_reference_equals_quantized_model():
    rng = np.random.default_rng(5)
    model = make_model(rng, [9, 7, 4], ["relu6", "tanh"], mode="tflite")
    compiled = compile_model(model, AcceleratorConfig())
    x_q = rng.integers(-128, 128, (20, 9), dtype=np.int8)
    np.testing.assert_array_equal(compiled.reference(x_q), model.predict(x_q, raw=True))


def test_docs_example_runs(capsys):
    """The example of docs/compiler.md runs and prints what the page shows."""
    from pathlib import Path
    text = (Path(__file__).parent.parent / "docs" / "compiler.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/compiler.md", "exec"), {})
    out = capsys.readouterr().out
    assert "fc0                   6      5  single" in out
    assert "STORE addr=3 count=3" in out
