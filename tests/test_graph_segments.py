"""Operations the device cannot run split the program: device segments and the host between.

Real models: the converter-made ``residual`` fixture (a CONCATENATION mid-network), a Keras
U-Net-like net (an early skip tensor concatenated with the deep path, twice), and an
ONNX ``quantize_static`` QDQ ResNet in mode "onnx" (its ADDs, pools and MEAN run on the host,
its convolutions on a CNN configuration that builds mode onnx). Each runs through
``connect("emu", config=...)`` and equals TFLite Micro / ONNX Runtime bit for bit; the emulator
refuses unsynchronised programs, so every segment passes the hazard checker too. The run report
and ``tessera profile`` say where each operation ran and what crossed the link.
"""

import numpy as np
import pytest

import make_tflite_fixtures as fixtures
import tessera
from tessera.compiler import CNN_PRESETS, compile_graph
from tessera.compiler.profile import PROFILE_KEYS, profile_model
from tessera.spec import AcceleratorConfig, isa
from test_keras_real import int8_inputs, tflm_run


@pytest.mark.parametrize("preset", ["icebreaker-cnn", "ulx3s-85f-cnn"])
def test_concatenation_mid_network_runs_between_device_segments(preset):
    path = fixtures.FIXTURE_DIR / "residual.tflite"
    qgraph = tessera.load_model(path, mode="tflite")
    config = CNN_PRESETS[preset].config
    compiled = compile_graph(qgraph, config)
    assert [s.where for s in compiled.segments] == ["device", "host", "device", "host"]
    x = int8_inputs(fixtures.FIXTURES["residual"][0], random_rows=100)
    expected = tflm_run(path.read_bytes(), x)
    assert len({row.tobytes() for row in expected}) > 60
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, x, raw=True), expected)
    report = {s["kind"]: s for s in compiled.report()["steps"]}
    concat = report["CONCATENATION"]
    assert concat["where"] == "host" and "no device mapping" in concat["reason"]
    # Its two 8x8 inputs go to the host and its 8x8x12 output comes back: 16 pixel tiles of 4
    # (icebreaker) or 2 of 32 (ULX3S), times 4 + 8 + 12 channels, one entry of `rows` bytes.
    tiles = -(-64 // config.rows)
    assert concat["transfer_bytes"] == tiles * 24 * config.act_entry_bytes
    assert compiled.why_not_resident().startswith("the host runs CONCATENATION")


def test_profile_counts_the_host_operations_link_time():
    result = profile_model(fixtures.FIXTURE_DIR / "residual.tflite", "icebreaker")
    assert tuple(result) == PROFILE_KEYS
    rows = {row["kind"]: row for row in result["layers"]}
    preset = CNN_PRESETS["icebreaker-cnn"]
    assert rows["CONCATENATION"]["where"] == "host" and rows["CONCATENATION"]["cycles"] == 0
    assert result["host_transfer_bytes"] == rows["CONCATENATION"]["transfer_bytes"] > 0
    assert result["streamed_bytes"] == 0 and result["fits"] is True
    assert result["link_ms"] == pytest.approx(result["host_transfer_bytes"] * 10 / preset.baud
                                              * 1e3)
    assert result["latency_ms"] == pytest.approx(result["cycles"] / (preset.clock_mhz * 1e3) +
                                                 result["link_ms"])
    assert rows["MEAN"]["where"] == "device"


def _unet(tf):
    # (The importer has no RESIZE, so the deep path keeps the resolution: dilated instead.)
    layers = tf.keras.layers
    inp = tf.keras.Input((8, 8, 3), batch_size=1, name="input")
    e1 = layers.Conv2D(6, 3, padding="same", activation="relu", name="enc1")(inp)
    d = layers.Conv2D(8, 3, padding="same", dilation_rate=2, activation="relu", name="mid")(e1)
    d = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="mid_dw")(d)
    c = layers.Concatenate(name="skip")([d, e1])
    c = layers.Conv2D(5, 3, padding="same", activation="relu", name="dec")(c)
    c = layers.Concatenate(name="skip2")([inp, c])
    c = layers.Conv2D(4, 1, activation="relu", name="dec2")(c)
    c = layers.MaxPooling2D(2, name="pool")(c)
    out = layers.Dense(6, name="head")(layers.GlobalAveragePooling2D(name="gap")(c))
    return tf.keras.Model(inp, out, name="unet")


def test_keras_unet_skip_concatenation_equals_tflite_micro():
    tf = fixtures._keras()
    model = _unet(tf)
    fixtures._randomise(model, 3)
    rows = np.random.default_rng(1).uniform(-1, 1, (32, 8, 8, 3)).astype(np.float32)
    data = fixtures.convert(model, rows)
    qgraph = tessera.load_model(data, mode="tflite")
    config = CNN_PRESETS["orangecrab-25f-cnn"].config
    compiled = compile_graph(qgraph, config)
    assert [s.where for s in compiled.segments] == ["device", "host", "device", "host",
                                                    "device"]
    # The second concatenation reads the graph input again: the host still has it.
    assert compiled.segments[2].loads and compiled.input_name not in compiled.segments[2].loads
    x = int8_inputs((8, 8, 3), random_rows=100)
    expected = tflm_run(data, x)
    assert len({row.tobytes() for row in expected}) > 60
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, x, raw=True), expected)


@pytest.mark.parametrize("net", ["ResNet", "Zoo"])
def test_onnx_mode_graphs_run_their_convolutions_on_the_device(tmp_path, net):
    """ResNet: its ADDs on the host, and its max pool too (a weightless segment between host
    operations would only move maps over the link twice); Zoo: its max pool on the device with
    the convolution after it, its table, pools and concatenation on the host."""
    import test_import_onnx_cnn as onnx_cnn
    src = tmp_path / f"{net}.onnx"
    onnx_cnn._export(getattr(onnx_cnn, net)(), onnx_cnn.SHAPES[net], src)
    path = onnx_cnn._quantize(src, "QDQ", True)
    qgraph = tessera.load_model(path)
    assert qgraph.mode == "onnx"
    config = AcceleratorConfig(rows=4, cols=4, act_depth=4096, weight_depth=8192,
                               param_depth=512, cnn=True, requant_modes=("onnx", "tflite"))
    compiled = compile_graph(qgraph, config)
    where = [(s.kind, s.where) for s in compiled.steps]
    assert all(w == "device" for k, w in where if k in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                         "FULLY_CONNECTED"))
    if net == "ResNet":
        assert ("ADD", "host") in where and ("ADD", "device") not in where
        (pool,) = [s for s in compiled.steps if s.kind == "MAX_POOL_2D"]
        assert pool.where == "host" and "link carries less" in pool.extra["reason"]
        assert [s.where for s in compiled.segments].count("device") == 4
    else:
        assert ("MAX_POOL_2D", "device") in where and ("CONCATENATION", "host") in where
        assert ("LUT", "host") in where
    x = onnx_cnn._inputs(onnx_cnn.SHAPES[net], 100)
    expected = onnx_cnn._ort(path, x)
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, x), expected)
    # A configuration without mode onnx (every CNN preset) refuses the graph, naming it.
    with pytest.raises(tessera.UnsupportedModelError,
                       match=r"is in mode 'onnx' but the configuration builds requant modes "
                             r"\('tflite',\) \(the CNN presets run graphs in mode 'tflite' "
                             r"only\)"):
        compile_graph(qgraph, CNN_PRESETS["icebreaker-cnn"].config)



def test_the_listing_of_a_segmented_graph_shows_each_segment():
    from tessera.cli.compile import format_graph_listing
    qgraph = tessera.load_model(fixtures.FIXTURE_DIR / "residual.tflite", mode="tflite")
    compiled = compile_graph(qgraph, CNN_PRESETS["ulx3s-85f-cnn"].config)
    titles = [line for line in format_graph_listing(compiled).splitlines()
              if line.startswith("segment")]
    assert [t.split(":")[0] for t in titles] == [
        "segment 0, device", "segment 0, device", "segment 1, host", "segment 2, device",
        "segment 2, device", "segment 3, host"]
    assert titles[2].endswith("CONCATENATION 'residual_1/concat_1/concat'")
    assert titles[3].startswith("segment 2, device: load residual_1/concat_1/concat: 1 frame")


def test_host_operations_first_mid_graph_and_around_a_live_skip_tensor():
    """A CONCATENATION of the input first (the device's first load is its output), a SOFTMAX
    mid-graph whose input the ADD after it reads again from the device (kept live across the
    host segment), a CONCATENATION of the ADD with the graph input (still on the host), then
    its flatten folded into a dense layer on the device."""
    from tflite_builder import TFLiteGraph, run_tflm
    rng = np.random.default_rng(5)

    def w(shape):
        return rng.integers(-127, 128, size=shape).astype(np.int8)

    g = TFLiteGraph()
    x = g.input("x", (1, 6, 5, 3), scale=0.05, zero_point=-3)
    cat = g.concatenation([x, x], name="cat_in")
    c1 = g.conv2d(cat, w((4, 3, 3, 6)), rng.integers(-500, 500, 4), w_scale=0.004,
                  y_scale=0.06, y_zero_point=-10, padding="same", activation="relu", name="c1")
    s = g.softmax(c1, name="mid_softmax")
    c2 = g.conv2d(s, w((4, 1, 1, 4)), None, w_scale=0.01, y_scale=0.05, y_zero_point=2,
                  name="c2")
    a = g.add(c2, c1, y_scale=0.05, y_zero_point=-3, name="add")  # TFLM concatenates equals
    flat = g.reshape(g.concatenation([a, x], name="cat_skip"), (1, -1), name="flatten")
    y = g.fully_connected(flat, w((5, 6 * 5 * 7)), rng.integers(-300, 300, 5), w_scale=0.002,
                          y_scale=0.2, y_zero_point=1, name="fc")
    model = g.build([y])
    qgraph = tessera.load_model(model, mode="tflite")
    config = AcceleratorConfig(rows=4, cols=2, act_depth=1024, weight_depth=2048,
                               param_depth=64, cnn=True, requant_modes=("tflite",))
    compiled = compile_graph(qgraph, config)
    assert [(s.where, s.loads, s.stores) for s in compiled.segments] == [
        ("host", [], []), ("device", ["cat_in/y"], ["c1/y"]), ("host", [], []),
        ("device", ["mid_softmax/y"], ["add/y"]), ("host", [], []),
        ("device", ["cat_skip/y"], ["fc/y"])]
    assert [s.where for s in compiled.steps if s.kind == "RESHAPE"] == ["folded"]
    xs = rng.integers(-128, 128, size=(60, 6, 5, 3)).astype(np.int8)
    xs[0], xs[1], xs[2] = -128, 127, -3
    expected = np.stack([run_tflm(model, [s[None]])[0][0] for s in xs])
    assert len({row.tobytes() for row in expected}) == 60
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, xs, raw=True), expected)
    moved = {s["name"]: s.get("transfer_bytes") for s in compiled.report()["steps"]}
    entry = config.act_entry_bytes          # 30 pixels: 8 tiles of 4 rows
    assert moved["cat_in/y"] == 8 * 6 * entry                       # its output loaded
    assert moved["mid_softmax/y"] == 2 * 8 * 4 * entry              # c1 stored, its output in
    assert moved["cat_skip/y"] == (8 * 4 + 8 * 7) * entry           # add stored, 7 ch loaded
    with pytest.raises(ValueError, match=r"runs in 6 device and host segments: run it with "
                                         r"infer\(sample, exec_frame\) or Device.run"):
        compiled.frames


def test_standalone_relu_and_relu6_run_on_the_device_as_a_clamping_max_pool():
    """RELU/RELU6 with the same quantization in and out (the importer's RELU kinds; others
    are tables) are a 1x1 max pool whose drain clamps: on the device, TFLite Micro's bits."""
    from ai_edge_litert import schema_py_generated as schema
    from tflite_builder import TFLiteGraph, run_tflm
    rng = np.random.default_rng(3)
    g = TFLiteGraph()
    x = g.input("x", (1, 5, 7, 3), scale=0.05, zero_point=-3)
    c = g.conv2d(x, rng.integers(-127, 128, (6, 3, 3, 3)).astype(np.int8),
                 rng.integers(-900, 900, 6), w_scale=0.004, y_scale=0.05, y_zero_point=-7,
                 padding="same", name="c")
    for kind, name in ((schema.BuiltinOperator.RELU6, "relu6"),
                       (schema.BuiltinOperator.RELU, "relu")):
        y = g.activation(f"{name}/y", (1, 5, 7, 6), scale=0.05, zero_point=-7)
        g.operator(kind, [c], [y])
        c = y
    model = g.build([c])
    qgraph = tessera.load_model(model, mode="tflite")
    config = AcceleratorConfig(rows=4, cols=2, act_depth=1024, weight_depth=2048,
                               param_depth=64, cnn=True, requant_modes=("tflite",))
    steps = compile_graph(qgraph, config).steps
    assert [(s.kind, s.where, s.conv_kind) for s in steps[1:]] == [
        ("RELU6", "device", isa.ConvKind.MAX_POOL), ("RELU", "device", isa.ConvKind.MAX_POOL)]
    xs = rng.integers(-128, 128, (50, 5, 7, 3)).astype(np.int8)
    xs[0], xs[1] = -128, 127
    expected = np.stack([run_tflm(model, [s[None]])[0][0] for s in xs])
    assert expected.min() == -7 and expected.max() == 113        # both bounds reached: 0 and 6
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, xs, raw=True), expected)


def test_a_weightless_segment_stays_on_the_device_when_that_moves_fewer_bytes():
    """A max pool between host SOFTMAXes reads a map the device holds and feeds a device
    convolution: on the host it would add a store and a load, so it stays (the compiler tries
    and restores it); the ADDs at the end run on the device too."""
    from tflite_builder import TFLiteGraph, run_tflm
    rng = np.random.default_rng(11)

    def conv(g, x, oc, k, name):
        ic = g.shape(x)[3]
        return g.conv2d(x, rng.integers(-127, 128, (oc, k, k, ic)).astype(np.int8),
                        rng.integers(-500, 500, oc), w_scale=0.005, y_scale=0.06,
                        y_zero_point=-4, padding="same", name=name)

    g = TFLiteGraph()
    x = g.input("x", (1, 6, 6, 3), scale=0.05, zero_point=-3)
    c1, c2 = conv(g, x, 4, 3, "c1"), conv(g, x, 4, 3, "c2")
    s1 = g.softmax(c1, name="s1")
    m = g.max_pool2d(c2, pool=3, stride=1, padding="same", name="m")
    s2 = g.softmax(x, name="s2")
    a = g.add(conv(g, m, 4, 1, "c3"), conv(g, s2, 4, 1, "c4"), y_scale=0.08, y_zero_point=1,
              name="a")
    out = g.add(a, conv(g, s1, 4, 1, "c5"), y_scale=0.1, y_zero_point=-2, name="out")
    model = g.build([out])
    qgraph = tessera.load_model(model, mode="tflite")
    config = AcceleratorConfig(rows=4, cols=2, act_depth=1024, weight_depth=2048,
                               param_depth=64, cnn=True, requant_modes=("tflite",))
    compiled = compile_graph(qgraph, config)
    assert [s.where for s in compiled.segments] == ["device", "host", "device", "host",
                                                    "device"]
    assert compiled.segments[2].loads == [] and compiled.segments[2].stores == []
    (pool,) = [s for s in compiled.steps if s.kind == "MAX_POOL_2D"]
    assert pool.where == "device" and pool.conv_kind == isa.ConvKind.MAX_POOL
    xs = rng.integers(-128, 128, (40, 6, 6, 3)).astype(np.int8)
    expected = np.stack([run_tflm(model, [s[None]])[0][0] for s in xs])
    assert len({row.tobytes() for row in expected}) == 40
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, xs, raw=True), expected)
