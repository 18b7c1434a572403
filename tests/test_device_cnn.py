"""CNN graphs resident on the emulated device (ISA version 3) equal TFLite Micro bit for bit.

A DAG built with ``tests/tflite_builder.py`` exercises every mapped parameter: a PAD folded
into a VALID convolution with stride (2, 1) and dilation (1, 2) on odd sizes, a SAME stride-2
convolution (padding at the end only), a depthwise SAME convolution with dilation 2 and depth
multiplier 2, a 1x1 projection, a residual ADD whose skip tensor stays live across the block,
a SAME max pool (3x2, stride (1, 2)), a SAME average pool (3x2, stride 2: the border divides by
fewer taps) flattened into a dense layer, a global average pool reshaped into another, their
ADD and a final SOFTMAX on the host. It runs on configurations with 4, 8 and 5 rows (pixels not
a multiple of the rows), several columns, banked ACT and parallel drain lanes; TFLite Micro is
the oracle. The emulator refuses unsynchronised programs, so every run also passes the hazard
checker.
"""

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from tflite_builder import TFLiteGraph, run_tflm

import tessera
from runtime_helpers import error_record, request
from tessera.compiler import ModelTooLarge, compile_graph
from tessera.runtime import Emulator, ParameterError
from tessera.runtime.conv import Window, gather_plan
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.protocol import Kind, Status

RNG = np.random.default_rng(1414)
CONFIGS = [
    AcceleratorConfig(rows=4, cols=3, act_depth=4096, weight_depth=4096, param_depth=256,
                      cnn=True, act_bank_lanes=2, drain_lanes=2, requant_cycles=3,
                      requant_modes=("tflite",)),
    AcceleratorConfig(rows=8, cols=1, act_depth=2048, weight_depth=4096, param_depth=256,
                      cnn=True),
    AcceleratorConfig(rows=5, cols=4, act_depth=4096, weight_depth=2048, param_depth=256,
                      cnn=True, max_payload=256),
]


def _weights(shape):
    return RNG.integers(-127, 128, size=shape).astype(np.int8)


def _dag():
    g = TFLiteGraph()
    x = g.input("x", (1, 13, 9, 3), scale=0.04, zero_point=-5)
    p = g.pad(x, [(0, 0), (1, 2), (0, 1), (0, 0)], name="pad")
    c = g.conv2d(p, _weights((6, 3, 3, 3)), RNG.integers(-900, 900, 6), name="conv",
                 w_scale=np.linspace(0.002, 0.009, 6), y_scale=0.05, y_zero_point=-128,
                 stride=(2, 1), dilation=(1, 2), padding="valid", activation="relu6")
    s = g.conv2d(c, _weights((8, 3, 3, 6)), RNG.integers(-900, 900, 8), name="down",
                 w_scale=0.006, y_scale=0.07, y_zero_point=-10, stride=2, padding="same",
                 activation="relu")
    d = g.depthwise_conv2d(s, _weights((1, 3, 3, 16)), RNG.integers(-500, 500, 16),
                           w_scale=np.linspace(0.01, 0.03, 16), y_scale=0.07, y_zero_point=-20,
                           depth_multiplier=2, dilation=2, padding="same", activation="relu",
                           name="dw")
    e = g.conv2d(d, _weights((8, 1, 1, 16)), None, w_scale=0.004, y_scale=0.06,
                 y_zero_point=3, name="project")
    f = g.add(s, e, y_scale=0.08, y_zero_point=-128, activation="relu6", name="residual")
    m = g.max_pool2d(f, pool=(3, 2), stride=(1, 2), padding="same", name="maxpool")
    a = g.average_pool2d(m, pool=(3, 2), stride=2, padding="same", name="avgpool")
    flat = g.reshape(a, (1, -1), name="flatten")                   # a 2x2x8 map: folded
    h = _fully_connected(g, flat, 6, name="fc0")
    gp = g.average_pool2d(m, pool=g.shape(m)[1:3], stride=1, name="global")
    one = g.reshape(gp, (1, 8), name="squeeze")                      # 1x1x8: an alias
    out = g.softmax(g.add(h, _fully_connected(g, one, 6, name="fc1"), y_scale=0.1,
                          y_zero_point=0, name="sum"), name="softmax")
    return g, out


def _fully_connected(g, x, n, name="fc"):
    """Append an int8 FULLY_CONNECTED of ``n`` outputs (weights [N, K], per tensor)."""
    sx, _ = g.quant(x)
    k = g.shape(x)[1]
    w = g.weights(f"{name}/w", _weights((n, k)), scale=np.float32(0.01), axis=0)
    b = g.bias(f"{name}/b", RNG.integers(-300, 300, n).astype(np.int32), scale=sx * 0.01)
    y = g.activation(f"{name}/y", (1, n), scale=0.1, zero_point=2)       # the same for all
    options = schema.FullyConnectedOptionsT()
    g.operator(schema.BuiltinOperator.FULLY_CONNECTED, [x, w, b], [y],
               schema.BuiltinOptions.FullyConnectedOptions, options, version=4)
    return y


def _inputs(shape, zero_point, count):
    x = RNG.integers(-128, 128, size=(count,) + tuple(shape)).astype(np.int8)
    x[0], x[1], x[2] = -128, 127, zero_point
    x[3] = np.where(np.indices(shape).sum(axis=0) % 2, 127, -128)
    return x


@pytest.fixture(scope="module")
def dag():
    g, out = _dag()
    model = g.build([out])
    qgraph = tessera.load_model(model, mode="tflite")
    x = _inputs(qgraph.graph.tensor(qgraph.graph.inputs[0]).shape, -5, 100)
    expected = np.stack([run_tflm(model, [sample[None]])[0][0] for sample in x])
    assert len({row.tobytes() for row in expected}) > 25     # the softmax saturates some
    return qgraph, x, expected


@pytest.mark.parametrize("config", CONFIGS, ids=["4x3-banked", "8x1", "5x4"])
def test_dag_on_the_device_equals_tflite_micro(dag, config):
    qgraph, x, expected = dag
    with tessera.connect("emu", config=config) as dev:
        y = dev.run(qgraph, x, raw=True)
    np.testing.assert_array_equal(y, expected)
    # The device's own result, the logits before the host's SOFTMAX, differs for every input.
    compiled = compile_graph(qgraph, config)
    with tessera.connect("emu", config=config) as dev:
        for frame in compiled.setup_frames:
            dev.link.request(Kind.EXEC, frame)
        logits = []
        for sample in x[:20]:
            for frame in compiled.input_frames(sample):
                dev.link.request(Kind.EXEC, frame)
            logits.append(compiled.output_from(
                {i: dev.link.request(Kind.EXEC, frame) for i, frame in enumerate(compiled.frames)}))
    np.testing.assert_array_equal(np.stack(logits), qgraph.forward_raw(x[:20])[compiled.result])
    assert len({row.tobytes() for row in logits}) == 20
    kinds = [(s.kind, s.where) for s in compiled.steps]
    assert ("SOFTMAX", "host") in kinds and ("RESHAPE", "alias") in kinds
    assert ("PAD", "folded") in kinds and ("RESHAPE", "folded") in kinds
    assert all(where == "device" for kind, where in kinds
               if kind not in ("SOFTMAX", "RESHAPE", "PAD"))


def test_a_model_that_does_not_fit_names_each_memory(dag):
    qgraph = dag[0]
    small = CONFIGS[1].replace(weight_depth=64)
    with pytest.raises(ModelTooLarge, match=r"does not fit the device resident: ACT needs "
                                             r"[\d,]+ bytes .* WGT needs [\d,]+ bytes \([\d,]+ "
                                             r"entries\), 64 available \(64\); PARAM needs .*"
                                             r"the smallest preset that fits it is "
                                             r"'orangecrab-25f-cnn'"):
        compile_graph(qgraph, small)


def test_configurations_without_cnn_refuse_the_new_opcodes():
    emu = Emulator(AcceleratorConfig())
    for seq, insn in enumerate((isa.Window(1, 1, 1, 1, 1, 1), isa.Conv(isa.ConvKind.CONV, 0, 8),
                                isa.Add(0, 0, 0, 1))):
        status, payload = request(emu, Kind.EXEC, isa.Sync().encode() + insn.encode(), seq)
        assert status == Status.BAD_OPCODE
        assert error_record(payload) == (16, int(insn.opcode))
    assert AcceleratorConfig().isa_version == 2
    assert AcceleratorConfig(cnn=True).isa_version == 3


@pytest.mark.parametrize("program, status", [
    (isa.Conv(isa.ConvKind.CONV, 0, 64).encode(), Status.BAD_FIELD),          # no WINDOW yet
    (isa.Window(4, 4, 2, 4, 4, 3).encode() +
     isa.Conv(isa.ConvKind.DEPTHWISE, 0, 64).encode(), Status.BAD_FIELD),      # in_c != out_c
    (isa.Window(4, 4, 2, 4, 4, 3).encode() +
     isa.Conv(isa.ConvKind.MAX_POOL, 0, 64).encode(), Status.BAD_FIELD),       # in_c != out_c
    (isa.Window(4, 4, 2, 4, 4, 3).encode() +
     isa.Conv(isa.ConvKind.CONV, 0, 250).encode(), Status.BAD_ADDRESS),       # dst + 12 > 256
    (isa.Add(0, 8, 16, 0).encode(), Status.BAD_FIELD),                         # count 0
    (isa.Add(0, 8, 16, 4).encode(), Status.BAD_FIELD),                         # post mode onnx
])
def test_version_3_field_and_address_checks(program, status):
    emu = Emulator(AcceleratorConfig(rows=4, cols=2, act_depth=256, cnn=True))
    assert request(emu, Kind.EXEC, program)[0] == status


def test_conv_padding_bits_are_a_bad_field():
    emu = Emulator(AcceleratorConfig(rows=4, cols=2, act_depth=256, cnn=True))
    word = isa.CNN_LAYOUTS[isa.CnnOpcode.CONV].to_bytes(opcode=7, kind=3, _pad0=1, src=0,
                                                        dst=64, w_addr=0, param_addr=0)
    program = isa.Window(4, 4, 2, 4, 4, 2).encode() + word
    assert request(emu, Kind.EXEC, program)[0] == Status.BAD_FIELD


def _gather_cycles_by_hand(w, rows, bank_lanes):
    """Busiest bank's distinct entries per (tile, tap), by plain loops (the cycle model)."""
    p_out = w.out_h * w.out_w
    tiles = -(-p_out // rows)
    out = np.ones((tiles, w.taps), np.int64)
    for t in range(tiles):
        for tap in range(w.taps):
            banks = {}
            for r in range(rows):
                p = t * rows + r
                if p >= p_out:
                    continue
                oh, ow = divmod(p, w.out_w)
                i, j = divmod(tap, w.kernel_w)
                ih = oh * w.stride_h + i * w.dilation_h - w.pad_top
                iw = ow * w.stride_w + j * w.dilation_w - w.pad_left
                if 0 <= ih < w.in_h and 0 <= iw < w.in_w:
                    q = ih * w.in_w + iw
                    banks.setdefault((q % rows) // bank_lanes, set()).add(q // rows)
            out[t, tap] = max([1] + [len(v) for v in banks.values()])
    return out


@pytest.mark.parametrize("rows, bank_lanes", [(4, 1), (4, 2), (8, 1), (5, 5)])
def test_gather_cycles_equal_the_bank_rule(rows, bank_lanes):
    w = Window(11, 7, 3, 6, 7, 4, 3, 3, 2, 1, 1, 2, 1, 2, -3)
    plan = gather_plan(w, rows, bank_lanes)
    np.testing.assert_array_equal(plan.step_cycles, _gather_cycles_by_hand(w, rows, bank_lanes))
    # A stride-1 SAME window with one-lane banks is a rotation: one cycle per step.
    same = Window(5, 5, 1, 5, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 0)
    assert (gather_plan(same, rows, 1).step_cycles == 1).all()


def test_conv_counters_follow_the_command_timeline():
    """A CONV's counters equal one GEMM per command issued back to back (cycles.gemm), the
    first conv_issue_cycles(rows) after the CONV."""
    from tessera.runtime.cycles import CycleModel
    from tessera.spec.timing import CONV_RELEASE_CYCLES, conv_issue_cycles
    cfg = AcceleratorConfig(rows=4, cols=2, act_depth=512, weight_depth=512, param_depth=64,
                            cnn=True, drain_lanes=2, requant_modes=("tflite",))
    w = Window(6, 5, 3, 3, 3, 5, 3, 3, 2, 2, 1, 1, 1, 1, 0)
    plan = gather_plan(w, cfg.rows, 1)
    per_tile = (plan.step_cycles.sum(axis=1) * w.in_c).tolist()
    fast, slow = CycleModel(drain_lanes=2), CycleModel(drain_lanes=2)
    fast.now, slow.now = 100, 100 + conv_issue_cycles(cfg.rows)
    fast.conv(per_tile_cycles=per_tile, pixels=9, rows=4, groups=3, cols=2, out_c=5, k=27)
    for t, steps in enumerate(per_tile):
        for g in range(3):
            slow.gemm(k=27, m_rows=min(4, 9 - 4 * t), n_cols=min(2, 5 - 2 * g), drain=True,
                      step_cycles=steps)
    # (the executor goes on CONV_RELEASE_CYCLES after the last command's acceptance)
    slow_counters = dict(slow.counters())
    slow_counters["cycles"] += CONV_RELEASE_CYCLES
    assert fast.counters() == slow_counters
    assert (fast.now, fast.engine_free_at, fast.drain_free_at) == \
        (slow.now + CONV_RELEASE_CYCLES, slow.engine_free_at, slow.drain_free_at)
    fast.wait_idle()
    assert fast.counters()["macs"] == 9 * 5 * 27


def test_a_conv_issued_while_the_gather_is_busy_waits_for_its_set_up():
    """The window address generator is set up for a CONV once the previous CONV's last step
    was shown (the end of its compute cycles minus GEMM_OVERHEAD_CYCLES - 2): a CONV issued
    before that starts conv_issue_cycles(rows) after it, not after its issue."""
    from tessera.runtime.cycles import CycleModel
    from tessera.spec.timing import GATHER_PIPELINE_CYCLES, GEMM_OVERHEAD_CYCLES, \
        conv_issue_cycles
    model = CycleModel()
    conv = dict(per_tile_cycles=[50], pixels=4, rows=4, groups=1, cols=2, out_c=2, k=50)
    model.conv(**conv)
    first = conv_issue_cycles(4)
    compute = 50 + GEMM_OVERHEAD_CYCLES + GATHER_PIPELINE_CYCLES
    assert model.engine_free_at == first + compute
    model.now = first + 3                 # issued while the first CONV's steps are read
    # the cycle after its last step was shown, 3 before the end of its compute cycles
    free = first + compute - (GEMM_OVERHEAD_CYCLES - 2)
    assert model.gather_free_at == free
    model.conv(**conv)
    assert model.engine_free_at == free + conv_issue_cycles(4) + compute


def test_a_device_without_the_cnn_features_is_refused_at_hello():
    """A version-2 device (today's gateware) answers HELLO with isa_version 2: a host with a
    cnn configuration refuses it before sending a program."""
    from tessera.runtime import ConfigMismatch, Device
    from tessera.runtime.transport import EmulatorTransport
    cfg = CONFIGS[1]
    built_without = Emulator(cfg.replace(cnn=False))
    with pytest.raises(ConfigMismatch, match=r"implements ISA version 2 but this host speaks "
                                             r"version 3 \(the CNN features .* tessera build "
                                             r"--preset NAME"):
        Device(EmulatorTransport(built_without), cfg)


def test_every_sync_of_a_compiled_graph_is_needed(dag):
    """Removing any one SYNC from the inference frames makes the emulator refuse a hazard."""
    from graph_helpers import assert_every_sync_is_needed
    qgraph, x, _ = dag
    assert_every_sync_is_needed(compile_graph(qgraph, CONFIGS[1]), x[0])


def test_converter_made_pools_fixture_runs_on_the_device():
    """tests/data/tflite_cnn/pools.tflite (real TFLiteConverter output: MAX_POOL, SAME average
    pool with a padded border, a flatten into a dense layer) equals TFLite Micro."""
    from pathlib import Path
    path = Path(__file__).parent / "data" / "tflite_cnn" / "pools.tflite"
    qgraph = tessera.load_model(path, mode="tflite")
    x = _inputs(qgraph.input_shape, qgraph.input_zero_point, 30)
    expected = np.stack([run_tflm(path.read_bytes(), [s[None]])[0][0] for s in x])
    with tessera.connect("emu", config=CONFIGS[0]) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, x, raw=True), expected)


def _nchw_nets():
    import torch
    from torch import nn
    torch.manual_seed(7)
    classifier = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                               nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU(),
                               nn.Flatten(), nn.Linear(8 * 4 * 3, 5)).eval()
    # Ends in a convolution: the output is a feature map, returned in the source's NCHW.
    dense_map = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                              nn.Conv2d(4, 5, 1)).eval()
    return {"classifier": classifier, "feature map": dense_map}


@pytest.mark.parametrize("net", ["classifier", "feature map"])
def test_an_nchw_source_runs_on_the_device_in_its_own_layout(net):
    """A PyTorch (NCHW) CNN on the device equals predict(): the frames carry NHWC samples, so
    the input is transposed on the way in and a feature-map output on the way out (an
    untransposed input gave 23 of 24 wrong outputs with no error)."""
    x = np.random.default_rng(5).normal(size=(40, 3, 8, 6)).astype(np.float32)
    qmodel = tessera.quantize(_nchw_nets()[net], calibration=x[:32], mode="tflite")
    assert qmodel.input_layout == "NCHW"
    with tessera.connect("emu", config=CONFIGS[0]) as dev:
        y = dev.run(qmodel, x[32:])
        x_q = qmodel.quantize_input(x[32:])
        y_raw = dev.run(qmodel, x_q, raw=True)
    np.testing.assert_array_equal(y, qmodel.predict(x[32:]))
    np.testing.assert_array_equal(y_raw, qmodel.predict(x_q, raw=True))
    assert y.shape == (8, *qmodel.output_shape)


def test_an_average_pool_over_padding_only_is_refused_not_divided_by_zero():
    """A window whose first output pixel sees only padding (pad_top = kernel_h) has no taps to
    average: undefined for the hardware, so the emulator refuses it instead of dividing by 0."""
    emu = Emulator(AcceleratorConfig(rows=4, cols=2, act_depth=256, cnn=True,
                                     requant_modes=("tflite",)))
    program = (isa.Window(4, 4, 2, 4, 4, 2, kernel_h=2, kernel_w=2, pad_top=2).encode() +
               isa.Conv(isa.ConvKind.AVERAGE_POOL, 0, 64).encode())
    with pytest.raises(ParameterError, match=r"^CONV at byte 16: average pool output pixel 0 "
                                             r"has every tap in the padding"):
        request(emu, Kind.EXEC, program)
