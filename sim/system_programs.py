"""cocotb system tests: random models compiled by the real compiler, RTL against the emulator.

Each scenario quantizes a random float MLP (random M, K, N; M and N generally not multiples of
the array; per-tensor or per-channel weights; each requantization mode the configuration
builds; every activation, LUT ones included; at the configuration's operand widths), compiles it
for the configuration, sends the setup
and the per-batch frames as ``EXEC`` requests and checks every response against the emulator
byte for byte (:class:`tb.TB`). The assembled output must also equal the model's own int8
reference. The ``ksplit`` shape has K larger than the weight buffer, so the compiler streams the
weights and splits each tile's K across accumulating GEMMs (only where the activation buffer
can hold such a K, i.e. not on the default configuration whose buffers are equally deep).
"""

import random

import cocotb
import numpy as np

import tessera
from tessera.compiler import assemble_outputs, compile_model
from tessera.spec import operand_range
from tessera.spec.protocol import Status

from tb import TB, config_from_env

_CONFIG = config_from_env()

# (mode, activation, per_channel, shape); a case is kept when the configuration can run it.
_ALL_CASES = [
    ("onnx", "relu", True, "mlp"),
    ("tflite", "relu", True, "mlp"),
    ("onnx", "none", False, "wide"),
    ("tflite", "relu6", False, "wide"),
    ("onnx", "sigmoid", True, "mlp"),
    ("tflite", "tanh", False, "mlp"),
    ("onnx", "relu6", True, "ksplit"),
    ("tflite", "none", True, "ksplit"),
]
_LUT_ACTIVATIONS = ("sigmoid", "tanh")


def _ksplit_room() -> int:
    """How far K may exceed the weight buffer with K + N still fitting the activation buffer."""
    return min(max(1, _CONFIG.weight_depth // 3),
               _CONFIG.act_depth - _CONFIG.weight_depth - 2 * _CONFIG.cols - 1)


def _runnable(case):
    mode, activation, _, shape = case
    return (_CONFIG.supports(mode) and (_CONFIG.lut or activation not in _LUT_ACTIVATIONS) and
            (shape != "ksplit" or _ksplit_room() >= 1))


CASES = [c for c in _ALL_CASES if _runnable(c)]


def _shape(rng, kind):
    """Return ``(m, sizes)``: batch rows and layer widths for the scenario ``kind``."""
    rows, cols = _CONFIG.rows, _CONFIG.cols
    m = rng.randint(1, 3 * rows + 1)
    if kind == "mlp":        # two layers chained on chip
        return m, [rng.randint(rows + 1, 40), rng.randint(cols + 1, 3 * cols + 1),
                   rng.randint(1, 2 * cols + 1)]
    if kind == "wide":       # one layer with several column tiles and K beyond one tile
        return m, [rng.randint(rows * cols + 1, rows * cols + 40), rng.randint(2 * cols, 4 * cols)]
    # ksplit: K beyond the whole weight buffer, few rows (the input is M*K bytes on the link)
    k = _CONFIG.weight_depth + rng.randint(1, _ksplit_room())
    return rng.randint(1, rows + 1), [k, rng.randint(1, 2 * cols + 1)]


def _random_model(rng, sizes, activation, mode, per_channel):
    np_rng = np.random.default_rng(rng.getrandbits(32))
    acts = ["relu"] * (len(sizes) - 2) + [activation]
    layers = []
    for k, n, act in zip(sizes, sizes[1:], acts):
        layers.append((np_rng.normal(0, 1 / np.sqrt(k), (k, n)), np_rng.normal(0, 0.2, n), act))
    x_cal = np_rng.normal(0, 1, (32, sizes[0]))
    qmodel = tessera.quantize(layers, calibration=x_cal, mode=mode, per_channel=per_channel,
                              bits=_CONFIG.input_bits, weight_bits=_CONFIG.weight_bits)
    return qmodel, np_rng


@cocotb.test()
@cocotb.parametrize((("mode", "activation", "per_channel", "shape"), CASES))
async def random_model(dut, mode, activation, per_channel, shape):
    """A random model through setup and program frames; every response checked."""
    tb = TB(dut)
    await tb.start()
    rng = random.Random(f"{tb.rng.random()}-{mode}-{activation}-{per_channel}-{shape}")
    m, sizes = _shape(rng, shape)
    qmodel, np_rng = _random_model(rng, sizes, activation, mode, per_channel)
    compiled = compile_model(qmodel, _CONFIG)
    if shape == "ksplit":
        assert any(len(a.weights.k_parts) > 1 for a in compiled.allocation.layers), \
            "the ksplit scenario must make the compiler split K"
    lo, hi = operand_range(_CONFIG.input_bits)
    x_q = np_rng.integers(lo, hi + 1, (m, sizes[0]),
                          dtype=np.int8 if _CONFIG.input_bits <= 8 else np.int16)
    dut._log.info("M=%d sizes=%s mode=%s activation=%s per_channel=%s: %d setup + frames",
                  m, sizes, mode, activation, per_channel, len(compiled.setup_frames))
    for index, frame in enumerate(compiled.setup_frames):
        response = await tb.exec(frame, what=f"setup frame {index}")
        assert response.kind == Status.OK and not response.payload
    program = compiled.program(x_q)
    responses = {}
    for index, frame in enumerate(program.frames):
        response = await tb.exec(frame, what=f"program frame {index}/{len(program.frames)}")
        assert response.kind == Status.OK, f"frame {index}: status {response.kind:#x}"
        if index in program.stores:
            responses[index] = response.payload
    np.testing.assert_array_equal(assemble_outputs(program, responses),
                                  qmodel.predict(x_q, raw=True))
    rtl = await tb.counters()
    assert rtl["macs"] == program.macs, (rtl["macs"], program.macs)
    dut._log.info("counters %s; %d frames checked", rtl, tb.scoreboard.checked)
