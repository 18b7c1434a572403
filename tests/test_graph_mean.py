"""MEAN over height and width on the emulated device equals TFLite Micro bit for bit.

``compiler.graph_mean`` maps a MEAN to the device only when its encoding is TFLM's MEAN for
every possible sum (an average pool, or a depthwise CONV with weight 1 and TFLM's multiplier
when that is a valid PARAM encoding); otherwise the host runs it between device segments. Both
are checked here against TFLite Micro: hand-built MEANs whose scales select each path (``n`` a
power of two and not, keepdims or not, a map wider than the window's kernel fields) on inputs
with rounding ties, and real Keras models with GlobalAveragePooling2D over several ``H*W``
converted by the real TFLiteConverter.
"""

import numpy as np
import pytest
from tflite_builder import TFLiteGraph, run_tflm

import make_tflite_fixtures as fixtures
import tessera
from tessera.compiler import CNN_PRESETS, compile_graph
from tessera.compiler.graph_mean import plan_mean, tflite_mean_multiplier
from tessera.spec import AcceleratorConfig, isa
from test_keras_real import int8_inputs, tflm_run

CONFIG = AcceleratorConfig(rows=4, cols=3, act_depth=2048, weight_depth=4096, param_depth=256,
                           cnn=True, requant_modes=("tflite",))


def _tie_inputs(shape, zero_point, count=64):
    """Extremes, the zero point, every channel at a different constant, and pixels alternating
    ``v`` and ``v + 1`` (an even ``n`` sums to ``n*v + n/2``: a tie of the average), random."""
    h, w, c = shape
    rng = np.random.default_rng(h * 100 + w)
    x = rng.integers(-128, 128, size=(count, h, w, c))
    x[0], x[1], x[2] = -128, 127, zero_point
    for i in range(3, 19):
        v = rng.integers(-128, 127, size=c)
        x[i] = v + (np.indices((h, w)).sum(axis=0) % 2)[..., None]
    x[19:27] = np.arange(c) * 37 % 256 - 128 + np.arange(8)[:, None, None, None]
    return np.clip(x, -128, 127).astype(np.int8)


# (H, W, C, x scale, x zero point, y scale, y zero point, keepdims, expected mapping)
CASES = {
    "16px-depthwise": (4, 4, 5, 0.05, -7, 0.031, 4, True, "DEPTHWISE"),
    "15px-depthwise": (3, 5, 6, 0.05, -7, 0.0500001, 3, False, "DEPTHWISE"),
    "6px-average-pool": (2, 3, 4, 0.04, 0, 0.0400001, 0, True, "AVERAGE_POOL"),
    "15px-host": (3, 5, 6, 0.05, -7, 0.05, -7, False, "host"),
    "49px-host": (7, 7, 3, 0.02, 5, 0.03, -9, True, None),
    "wide-host": (1, 40, 3, 0.05, -7, 0.031, 4, False, "host"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_mean_equals_tflite_micro_on_the_device_or_the_host(case):
    h, w, c, sx, zx, sy, zy, keepdims, mapping = CASES[case]
    g = TFLiteGraph()
    x = g.input("x", (1, h, w, c), scale=sx, zero_point=zx)
    y = g.mean_hw(x, y_scale=sy, y_zero_point=zy, keepdims=keepdims)
    model = g.build([y])
    qgraph = tessera.load_model(model, mode="tflite")
    (step,) = compile_graph(qgraph, CONFIG).steps
    plan = plan_mean(sx, zx, sy, zy, h * w) if w <= 31 else None
    if mapping is None:                        # whichever way; the result must be TFLM's
        mapping = "host" if plan is None else plan.kind.name
    assert (step.where if step.where == "host" else step.conv_kind.name) == mapping
    if mapping == "host":
        assert ("kernel fields" if w > 31 else "below 2^30") in step.extra["reason"]
    inputs = _tie_inputs((h, w, c), zx)
    expected = np.stack([run_tflm(model, [s[None]])[0][0] for s in inputs])
    assert len({row.tobytes() for row in expected}) > 40
    with tessera.connect("emu", config=CONFIG) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, inputs, raw=True), expected)


def test_the_mapping_is_tflm_for_every_sum_and_host_only_when_it_must_be():
    """Over random scales: a plan is TFLM's formula for every int8 sum; no plan only when
    TFLM's multiplier is denormalised (below 2^30)."""
    from tessera.numerics.ops_tflite import mean_hw
    rng = np.random.default_rng(14)
    kinds = set()
    for _ in range(60):
        n = int(rng.integers(1, 40))
        sx = float(rng.uniform(0.01, 0.1))
        sy = sx * float(rng.choice([1.0, rng.uniform(0.4, 2.0)]))
        zx, zy = (int(v) for v in rng.integers(-128, 128, 2))
        plan = plan_mean(sx, zx, sy, zy, n)
        m, _ = tflite_mean_multiplier(sx, sy, n)
        kinds.add(None if plan is None else plan.kind)
        if plan is None:
            assert 0 < m < 1 << 30
            continue
        # Every sum of n int8 values: a 1 x n map per channel reaching each of them.
        sums = np.arange(-128 * n, 127 * n + 1)
        base, rest = np.divmod(sums + 128 * n, n)
        x = (np.arange(n)[None, :] < rest[:, None]).astype(np.int64) + base[:, None] - 128
        want = mean_hw(x.astype(np.int8)[:, None, :, None], x_scale=sx, x_zero_point=zx,
                       y_scale=sy, y_zero_point=zy, keepdims=False)[:, 0]
        if plan.kind == isa.ConvKind.AVERAGE_POOL:
            half = n // 2
            got = np.where(sums > 0, (sums + half) // n, -((half - sums) // n))
            got = np.clip(got, -128, 127)
        else:
            from tessera.numerics.requant_tflite import multiply_by_quantized_multiplier
            got = np.clip(multiply_by_quantized_multiplier(sums + plan.bias, plan.multiplier,
                                                           plan.shift) + zy, -128, 127)
        np.testing.assert_array_equal(got, want)
    assert {None, isa.ConvKind.DEPTHWISE} <= kinds


@pytest.fixture(scope="module")
def keras_gap_models():
    """Conv2D, GlobalAveragePooling2D, Dense over several H x W, converted by TFLiteConverter."""
    tf = fixtures._keras()
    layers = tf.keras.layers
    models = {}
    for h, w in [(4, 4), (3, 5), (6, 10), (5, 5), (7, 7), (2, 3)]:
        inp = tf.keras.Input((h, w, 3), batch_size=1, name="input")
        x = layers.Conv2D(5, 3, padding="same", activation="relu", name="conv")(inp)
        keep = h == 5                          # keepdims, then a flatten (an alias)
        x = layers.GlobalAveragePooling2D(keepdims=keep, name="gap")(x)
        x = layers.Flatten(name="flatten")(x) if keep else x
        model = tf.keras.Model(inp, layers.Dense(3, name="dense")(x), name=f"gap{h}x{w}")
        fixtures._randomise(model, h * 10 + w)
        rows = np.random.default_rng(1).uniform(-1, 1, (32, h, w, 3)).astype(np.float32)
        models[(h, w)] = fixtures.convert(model, rows)
    return models


def test_keras_global_average_pooling_equals_tflite_micro(keras_gap_models):
    config = CNN_PRESETS["icebreaker-cnn"].config
    where = {}
    for (h, w), data in keras_gap_models.items():
        qgraph = tessera.load_model(data, mode="tflite")
        x = int8_inputs((h, w, 3), random_rows=100)
        expected = tflm_run(data, x)
        assert len({row.tobytes() for row in expected}) > 60
        with tessera.connect("emu", config=config) as dev:
            np.testing.assert_array_equal(dev.run(qgraph, x, raw=True), expected,
                                          err_msg=f"{h}x{w}")
        (mean,) = [s for s in compile_graph(qgraph, config).steps if s.kind == "MEAN"]
        where[h * w] = mean.where
    assert where[16] == "device"
    # n not a power of two on the device, and on the host (its multiplier is denormalised).
    assert any(where[n] == "device" for n in (15, 60, 25, 49, 6))
    assert any(where[n] == "host" for n in (15, 60, 25, 49, 6))


def test_a_mean_whose_ones_would_be_streamed_runs_on_the_host():
    """Its n*C WGT entries of ones would cost `cols` times its map's bytes per inference."""
    g = TFLiteGraph()
    rng = np.random.default_rng(9)
    x = g.input("x", (1, 8, 8, 3), scale=0.05, zero_point=-7)
    c = g.conv2d(x, rng.integers(-127, 128, (16, 3, 3, 3)).astype(np.int8),
                 rng.integers(-900, 900, 16), w_scale=0.004, y_scale=0.05, y_zero_point=-7,
                 padding="same", activation="relu", name="conv")
    y = g.mean_hw(c, y_scale=0.031, y_zero_point=4, keepdims=False)   # 64 px: maps exactly
    model = g.build([y])
    qgraph = tessera.load_model(model, mode="tflite")
    roomy = compile_graph(qgraph, CONFIG)
    assert [s.where for s in roomy.steps] == ["device", "device"]
    assert roomy.steps[1].conv_kind == isa.ConvKind.DEPTHWISE
    conv_entries = len(roomy.steps[0].weights)               # 16 channels: 6 groups of 3
    tight = CONFIG.replace(weight_depth=conv_entries + 16 * 64 - 1)
    compiled = compile_graph(qgraph, tight)
    mean = compiled.steps[1]
    assert mean.where == "host" and "ones would be streamed" in mean.extra["reason"]
    assert compiled.plan.resident
    inputs = _tie_inputs((8, 8, 3), -7, 40)
    expected = np.stack([run_tflm(model, [s[None]])[0][0] for s in inputs])
    with tessera.connect("emu", config=tight) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, inputs, raw=True), expected)
