"""Compiled programs executed by the emulator equal the NumPy reference bit for bit."""

import numpy as np
import pytest

import tessera
from tessera.compiler import compile_gemm, compile_model
from tessera.spec import AcceleratorConfig

from compiler_helpers import make_model

TINY = dict(rows=2, cols=3, act_depth=64, weight_depth=16, param_depth=8, max_payload=64)

CONFIGS = {
    # K split across GEMMs, weights and parameters streamed, several chunks per batch
    "tiny": AcceleratorConfig(**TINY),
    # parameter tiles narrower than the array, single weight slot
    "tiny-narrow": AcceleratorConfig(**{**TINY, "param_depth": 2, "weight_depth": 30}),
    # everything resident
    "tiny-resident": AcceleratorConfig(**{**TINY, "weight_depth": 1024, "param_depth": 64,
                                          "max_payload": 200}),
    "3x5": AcceleratorConfig(rows=3, cols=5, act_depth=200, weight_depth=100, param_depth=40,
                             max_payload=128),
    "default": AcceleratorConfig(),
    "16x8-tflite-only": AcceleratorConfig(rows=16, cols=8, requant_modes=("tflite",),
                                          act_depth=512, weight_depth=256, max_payload=512),
}


def _run(config, qmodel, x_q):
    with tessera.connect("emu", config=config) as dev:
        return dev.run(qmodel, x_q, raw=True)


CASES = [(name, mode) for name in sorted(CONFIGS) for mode in CONFIGS[name].requant_modes]


@pytest.mark.parametrize("name, mode", CASES)
def test_mlp_bit_exact(name, mode):
    config = CONFIGS[name]
    rng = np.random.default_rng(CASES.index((name, mode)))
    model = make_model(rng, [23, 17, 9, 4], ["relu", "relu6", "none"], mode=mode)
    for m in (1, 7, 41):
        x_q = rng.integers(-128, 128, (m, 23), dtype=np.int8)
        np.testing.assert_array_equal(_run(config, model, x_q), model.predict(x_q, raw=True))


@pytest.mark.parametrize("name", ["tiny", "3x5", "default"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_lut_activations_bit_exact(name, per_channel):
    """Two different tables: the LUT is reloaded between layers (with a SYNC)."""
    config = CONFIGS[name]
    rng = np.random.default_rng(11)
    model = make_model(rng, [11, 10, 6, 5], ["sigmoid", "tanh", "sigmoid"],
                       per_channel=per_channel)
    x_q = rng.integers(-128, 128, (13, 11), dtype=np.int8)
    np.testing.assert_array_equal(_run(config, model, x_q), model.predict(x_q, raw=True))


def test_single_lut_is_resident():
    config = CONFIGS["default"]
    rng = np.random.default_rng(12)
    model = make_model(rng, [8, 8, 3], ["tanh", "none"])
    compiled = compile_model(model, config)
    assert compiled.allocation.lut_resident and compiled.weights_resident
    x_q = rng.integers(-128, 128, (9, 8), dtype=np.int8)
    np.testing.assert_array_equal(_run(config, model, x_q), model.predict(x_q, raw=True))


def test_float_api_round_trip():
    config = CONFIGS["3x5"]
    rng = np.random.default_rng(13)
    model = make_model(rng, [6, 12, 2], ["relu", "none"])
    x = rng.normal(0, 1, (10, 6))
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(model, x), model.predict(x))


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_bare_gemm_large_accumulators(mode):
    """Accumulators beyond 2**24 (float32 rounding in mode onnx), K split on a tiny config."""
    config = CONFIGS["tiny"]
    rng = np.random.default_rng(14)
    k, n = 40, 5
    w = np.where(rng.random((k, n)) < 0.5, 127, -127).astype(np.int8)
    bias = rng.integers(-(1 << 26), 1 << 26, n, dtype=np.int32)
    if mode == "onnx":
        mult, shift = np.full(n, np.float32(2.0 ** -18).view(np.uint32)), 0
    else:
        mult, shift = np.full(n, 1 << 30, dtype=np.uint32), -17
    compiled = compile_gemm(w, bias, mult, shift, config, mode=mode, zero_point=3, lo=-100,
                            hi=90)
    x_q = np.where(w[:, :1].T > 0, 127, -128).astype(np.int8).repeat(5, axis=0)
    x_q[1::2] = rng.integers(-128, 128, (2, k), dtype=np.int8)
    with tessera.connect("emu", config=config) as dev:
        for frame in compiled.setup_frames:
            dev.link.request(tessera.spec.protocol.Kind.EXEC, frame)
        y = dev.execute(compiled.program(x_q))
    np.testing.assert_array_equal(y, compiled.reference(x_q))
    acc = x_q.astype(np.int64) @ w.astype(np.int64) + bias
    assert np.abs(acc).max() > 1 << 24  # float32(acc) rounds: the onnx path is discriminated


def test_gemm_256_cubed_utilisation():
    """The 256x256x256 GEMM on 8x8 keeps the array busy (whole-K GEMMs, no stalls)."""
    config = AcceleratorConfig()
    rng = np.random.default_rng(15)
    w = rng.integers(-127, 128, (256, 256), dtype=np.int8)
    bias = rng.integers(-1000, 1000, 256, dtype=np.int32)
    compiled = compile_gemm(w, bias, np.float32(1e-4).view(np.uint32), 0, config)
    x_q = rng.integers(-128, 128, (256, 256), dtype=np.int8)
    with tessera.connect("emu", config=config) as dev:
        for frame in compiled.setup_frames:
            dev.link.request(tessera.spec.protocol.Kind.EXEC, frame)
        dev.clear_counters()
        y = dev.execute(compiled.program(x_q))
        counters = dev.counters()
    np.testing.assert_array_equal(y, compiled.reference(x_q))
    assert counters["macs"] == 256 ** 3
    assert counters["utilisation"] >= 0.90
    assert counters["stall_cycles"] == 0
