"""ONNX CNNs quantized by onnxruntime.quantization.quantize_static, imported into the graph.

Real models, real tools: PyTorch builds the float CNNs (a ResNet-style net with residual ADDs and
a "zoo" of the other operators), ``torch.onnx.export`` writes them, ``quantize_static`` quantizes
them with calibration data (QDQ and QOperator, per tensor and per channel), and the imported
:class:`tessera.graph.QuantizedGraph` must equal ONNX Runtime bit for bit on 256 inputs,
saturated ones included.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)
from torch import nn

import tessera
from tessera.graph import QuantizedGraph
from tessera.quantize.errors import UnsupportedModelError


class _Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                                nn.BatchNorm2d(cout), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.c2(self.c1(x)) + self.short(x))


class ResNet(nn.Module):
    """Stem, two residual blocks (one downsampling), depthwise conv, pools, classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(_Block(8, 8, 1), _Block(8, 16, 2))
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.pools = nn.Sequential(nn.AvgPool2d(2), nn.MaxPool2d(3, 1, 1),
                                   nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.dw(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(self.pools(x), 1))


class Zoo(nn.Module):
    """Dilation, stride 2, depth multiplier 2, both count_include_pad, a table, concat, softmax."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, 2, (1, 2), dilation=(1, 2))
        self.dw = nn.Conv2d(6, 12, 3, 1, 1, groups=6)
        self.b, self.b2 = nn.Conv2d(6, 4, 1), nn.Conv2d(6, 4, 3, 1, 1)
        self.pool_pad = nn.AvgPool2d(3, 1, 1, count_include_pad=True)
        self.pool_in = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.mp, self.c = nn.MaxPool2d(3, 2, 1), nn.Conv2d(20, 8, 3)
        self.gap, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.a(x))
        y = torch.cat([self.pool_pad(self.dw(x)), self.pool_in(torch.sigmoid(self.b(x))),
                       self.b2(x)], 1)
        y = torch.relu(self.c(self.mp(y)))
        return torch.softmax(self.fc(torch.flatten(self.gap(y), 1)), -1)


class LeNet(nn.Module):
    """Convolutions, then a flatten of a 4x4 map into a dense layer (NCHW order in the file)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(4, 8, 3), nn.ReLU())
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


SHAPES = {"ResNet": (3, 16, 16), "Zoo": (3, 17, 15), "LeNet": (1, 16, 16)}
KINDS = {"ResNet": {"CONV_2D", "ADD", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                    "MEAN", "FULLY_CONNECTED"},
         "Zoo": {"CONV_2D", "DEPTHWISE_CONV_2D", "CONCATENATION", "SOFTMAX", "LUT", "PAD",
                 "AVERAGE_POOL_2D", "MEAN"},
         "LeNet": {"CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED"}}


class _Calibration(CalibrationDataReader):
    def __init__(self, shape):
        rng = np.random.default_rng(0)
        self.rows = iter([{"x": rng.standard_normal((1, *shape)).astype(np.float32)}
                          for _ in range(24)])

    def get_next(self):
        return next(self.rows, None)


def _export(net, shape, path):
    torch.manual_seed(0)
    net = net.eval()
    for m in net.modules():               # BatchNorm statistics that are not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    with warnings.catch_warnings():  # the torch.export-based exporter needs onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)   # the legacy one says it is old
        torch.onnx.export(net, torch.randn(1, *shape), str(path), dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})


@pytest.fixture(scope="module")
def float_models(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("onnx_cnn")
    paths = {}
    for net in (ResNet(), Zoo(), LeNet()):
        name = type(net).__name__
        paths[name] = folder / f"{name}.onnx"
        _export(net, SHAPES[name], paths[name])
    return paths


def _quantize(src, fmt, per_channel, activation_type=QuantType.QInt8, shape=None):
    out = src.with_name(f"{src.stem}_{fmt}_{int(per_channel)}_{activation_type.name}.onnx")
    shape = SHAPES[src.stem] if shape is None else shape
    quantize_static(str(src), str(out), _Calibration(shape),
                    quant_format=getattr(QuantFormat, fmt), per_channel=per_channel,
                    activation_type=activation_type, weight_type=QuantType.QInt8)
    return out


def _inputs(shape, n=256):
    x = np.random.default_rng(7).standard_normal((n, *shape)).astype(np.float32) * 1.5
    x[0], x[1], x[2] = 100, -100, 0             # saturated both ways, and the zero point
    x[3, :, ::2] = 100
    return x


def _ort(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    # ORT otherwise rewrites int8 QDQ to uint8 kernels (docs/numerics.md says where it differs).
    options.add_session_config_entry("session.qdqisint8allowed", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("net", ["ResNet", "Zoo", "LeNet"])
def test_quantize_static_cnn_equals_onnxruntime(float_models, net, fmt, per_channel):
    path = _quantize(float_models[net], fmt, per_channel)
    model = tessera.load_model(path)
    assert isinstance(model, QuantizedGraph)
    assert model.input_layout == "NCHW" and model.mode == "onnx"
    assert model.input_shape == SHAPES[net]
    x = _inputs(SHAPES[net])
    expected = _ort(path, x)
    np.testing.assert_array_equal(model.predict(x), expected)
    assert len(np.unique(expected)) > 20, "the outputs must vary to discriminate"
    assert KINDS[net] <= {op.kind for op in model.graph.ops}


def test_summary_states_the_layout(float_models):
    model = tessera.load_model(_quantize(float_models["ResNet"], "QOperator", True))
    text = model.summary()
    assert "NCHW" in text and "ADD" in text and "QOperator" in text


def _float_onnx(tmp_path, net, shape):
    path = tmp_path / f"{type(net).__name__}.onnx"
    _export(net, shape, path)
    return path


class _Mean(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.mean(self.conv(x), dim=(2, 3))


class _Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, groups=2)

    def forward(self, x):
        return self.conv(x)


def test_unsupported_operator_is_named(tmp_path):
    path = _quantize(_float_onnx(tmp_path, _Mean(), (3, 6, 6)), "QDQ", False, shape=(3, 6, 6))
    with pytest.raises(UnsupportedModelError, match=r"unsupported operator in node "
                       r"'/ReduceMean' \(ReduceMean\); Tessera imports quantized ONNX graphs of: "
                       r"QuantizeLinear, .*\. ORT's quantizer leaves ReduceMean in float; for a "
                       r"mean over H and W export a GlobalAveragePool"):
        tessera.load_model(path)


def test_grouped_conv_is_refused(tmp_path):
    path = _quantize(_float_onnx(tmp_path, _Grouped(), (4, 6, 6)), "QOperator", False,
                     shape=(4, 6, 6))
    with pytest.raises(UnsupportedModelError, match=r"is a grouped conv \(2 groups of 4 "
                       r"channels\); Tessera imports group=1 and depthwise"):
        tessera.load_model(path)


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("net", ["ResNet", "Zoo", "LeNet"])
def test_uint8_activations_equal_onnxruntime(float_models, net, fmt):
    # quantize_static's default activation type. Held as int8 minus 128; ADD and AVERAGE_POOL_2D
    # round on the uint8 values as ORT does. (On AVX2 CPUs without VNNI, ORT's u8s8 kernels can
    # saturate int16 pair sums: docs/numerics.md.)
    path = _quantize(float_models[net], fmt, True, QuantType.QUInt8)
    model = tessera.load_model(path)
    x = _inputs(SHAPES[net])
    np.testing.assert_array_equal(model.predict(x), _ort(path, x))
    rounded = [op for op in model.graph.ops if op.kind in ("ADD", "AVERAGE_POOL_2D")]
    assert rounded and all(op.attrs["unsigned"] for op in rounded) or net == "LeNet"


def test_uint8_weights_are_refused(float_models):
    path = float_models["LeNet"].with_name("LeNet_u8w.onnx")
    quantize_static(str(float_models["LeNet"]), str(path), _Calibration(SHAPES["LeNet"]),
                    quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QUInt8)
    with pytest.raises(UnsupportedModelError, match=r"has uint8 weights; Tessera needs symmetric "
                       r"int8 weights \(quantize_static with weight_type=QuantType.QInt8\)"):
        tessera.load_model(path)


def _qoperator_graph(tail, auto_pad="SAME_UPPER"):
    """A hand-written QOperator file: Q -> Pad -> QLinearConv (``auto_pad``, stride 2) -> tail."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(5)
    inits = {"s": np.float32(0.05), "z": np.int8(-3), "w": rng.integers(
        -127, 128, (4, 2, 3, 3)).astype(np.int8), "ws": rng.uniform(0.002, 0.02, 4).astype(
        np.float32), "wz": np.zeros(4, np.int8), "ys": np.float32(0.09), "yz": np.int8(6),
        "b": rng.integers(-500, 500, 4).astype(np.int32),
        "pads": np.array([0, 0, 1, 2, 0, 0, 0, 1], np.int64), "zs": np.float32(0.07),
        "zz": np.int8(-1)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("Pad", ["xq", "pads", "z"], ["xp"], name="pad"),
             helper.make_node("QLinearConv", ["xp", "s", "z", "w", "ws", "wz", "ys", "yz", "b"],
                              ["c"], name="conv", auto_pad=auto_pad, strides=[2, 2],
                              kernel_shape=[3, 3])] + tail
    graph = helper.make_graph(
        nodes, "qop", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 7, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_pad_and_auto_pad_equal_onnxruntime(tmp_path, auto_pad):
    from onnx import helper
    model = _qoperator_graph([
        helper.make_node("QLinearAveragePool", ["c", "ys", "yz", "zs", "zz"], ["p"],
                         domain="com.microsoft", kernel_shape=[2, 2], auto_pad="VALID"),
        helper.make_node("DequantizeLinear", ["p", "zs", "zz"], ["y"])], auto_pad)
    path = tmp_path / "qop.onnx"
    path.write_bytes(model.SerializeToString())
    imported = tessera.load_model(path)
    assert [op.kind for op in imported.graph.ops] == ["PAD", "CONV_2D", "AVERAGE_POOL_2D"]
    x = _inputs((2, 7, 6), 64)
    np.testing.assert_array_equal(imported.predict(x), _ort(path, x))


def test_flatten_feeding_another_op_is_refused():
    from onnx import helper
    model = _qoperator_graph([
        helper.make_node("Flatten", ["c"], ["f"], name="flat"),
        helper.make_node("QLinearSoftmax", ["f", "ys", "yz", "zs", "zz"], ["p"],
                         domain="com.microsoft", axis=-1, opset=13),
        helper.make_node("DequantizeLinear", ["p", "zs", "zz"], ["y"])])
    with pytest.raises(UnsupportedModelError, match=r"node 'flat' \(Flatten\) flattens a tensor "
                       r"of per-sample shape \(4, 5, 4\) \(NHWC\) that does not only feed "
                       "Gemm/MatMul"):
        tessera.load_model(model)


def test_qdq_activations_between_dq_and_q_equal_onnxruntime(tmp_path):
    # Relu on unchanged quantization is a clamp (RELU); LeakyRelu and Clip become tables
    # tabulated by running the DQ -> op -> Q nodes in ORT.
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(9)
    inits = {"s": np.float32(0.04), "z": np.int8(5), "w": rng.integers(-127, 128, (3, 2, 3, 3))
             .astype(np.int8), "ws": np.float32(0.01), "wz": np.int8(0), "cs": np.float32(0.08),
             "cz": np.int8(-9), "ls": np.float32(0.05), "lz": np.int8(20),
             "lo": np.float32(-1.0), "hi": np.float32(2.5), "ks": np.float32(0.02),
             "kz": np.int8(-30)}
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             n("DequantizeLinear", ["xq", "s", "z"], ["xf"]),
             n("DequantizeLinear", ["w", "ws", "wz"], ["wf"]),
             n("Conv", ["xf", "wf"], ["cf"], pads=[1, 1, 1, 1]),
             n("QuantizeLinear", ["cf", "cs", "cz"], ["cq"]),
             n("DequantizeLinear", ["cq", "cs", "cz"], ["cd"]), n("Relu", ["cd"], ["rf"]),
             n("QuantizeLinear", ["rf", "cs", "cz"], ["rq"]),
             n("DequantizeLinear", ["rq", "cs", "cz"], ["rd"]),
             n("LeakyRelu", ["rd"], ["lf"], alpha=0.3),
             n("QuantizeLinear", ["lf", "ls", "lz"], ["lq"]),
             n("DequantizeLinear", ["lq", "ls", "lz"], ["ld"]),
             n("Clip", ["ld", "lo", "hi"], ["kf"]),
             n("QuantizeLinear", ["kf", "ks", "kz"], ["kq"]),
             n("DequantizeLinear", ["kq", "ks", "kz"], ["y"])]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 6, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "acts.onnx"
    path.write_bytes(model.SerializeToString())
    imported = tessera.load_model(path)
    assert [op.kind for op in imported.graph.ops] == ["CONV_2D", "RELU", "LUT", "LUT"]
    x = _inputs((2, 6, 5), 64)
    np.testing.assert_array_equal(imported.predict(x), _ort(path, x))


def test_after_quant_pre_process(float_models):
    # ORT's recommended workflow: shape inference and graph optimisation before quantize_static.
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = float_models["ResNet"].with_name("ResNet_pre.onnx")
    quant_pre_process(str(float_models["ResNet"]), str(pre))
    path = _quantize(pre, "QDQ", True, shape=SHAPES["ResNet"])
    x = _inputs(SHAPES["ResNet"])
    np.testing.assert_array_equal(tessera.load_model(path).predict(x), _ort(path, x))
