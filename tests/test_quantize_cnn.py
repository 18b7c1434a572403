"""Post-training quantization of float CNNs from PyTorch and float ONNX into a QuantizedGraph:
the float graph Tessera reads equals the framework's own output, and the int8 graph stays
within a few percent of it (per-channel weights, calibrated activations, BatchNorm folded)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import tessera
from tessera.graph import QuantizedGraph
from tessera.quantize.graph_sources import float_graph_source

nn = torch.nn
F32 = np.float32


class Block(nn.Module):
    """A ResNet basic block: conv-BN-relu, conv-BN, + identity, relu."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class ResNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                                  nn.ReLU())
        self.block = Block(8)
        self.depthwise = nn.Conv2d(8, 16, 3, groups=8, padding=1)     # depth multiplier 2
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2, padding=1, count_include_pad=False)
        self.head = nn.Linear(16 * 3 * 3, 5)        # a 3x3 flatten: channel-major rows

    def forward(self, x):
        x = self.avg(self.pool(torch.relu(self.depthwise(self.block(self.stem(x))))))
        return self.head(torch.flatten(x, 1))


def _resnetish():
    torch.manual_seed(0)
    net = ResNetish()
    with torch.no_grad():
        for m in net.modules():              # non-trivial BatchNorm statistics to fold
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def _nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_pytorch_resnet_block_post_training_quantization(mode, tmp_path):
    net = _resnetish()
    x = np.random.default_rng(0).normal(size=(300, 3, 16, 16)).astype(F32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x[200:])).numpy()
    graph, source = float_graph_source(net, x[:200])
    assert source == "PyTorch ResNetish (exported to ONNX)" and graph.input_layout == "NCHW"
    np.testing.assert_allclose(graph.forward(_nhwc(x[200:])), expected, atol=1e-5)
    qmodel = tessera.quantize(net, calibration=x[:200], mode=mode)
    assert isinstance(qmodel, QuantizedGraph) and qmodel.input_shape == (3, 16, 16)
    assert [op.kind for op in qmodel.graph.ops] == [
        "CONV_2D", "CONV_2D", "CONV_2D", "ADD", "DEPTHWISE_CONV_2D", "MAX_POOL_2D",
        "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]
    y = qmodel.predict(x[200:])
    assert np.abs(y - expected).max() <= 0.02 * np.ptp(expected)
    assert np.mean(y.argmax(1) == expected.argmax(1)) >= 0.95
    assert all(t.qparams.per_channel for t in qmodel.graph.tensors.values()
               if t.name.endswith(":weight"))
    assert net.training is False and net.stem[1].training is False
    qmodel.save(tmp_path / "resnetish.npz")               # a graph file (format version 2)
    again = tessera.load_model(tmp_path / "resnetish.npz")
    assert isinstance(again, QuantizedGraph) and again.input_layout == "NCHW"
    np.testing.assert_array_equal(again.predict(x[200:]), y)


def _basic(channels_in, channels, stride):
    return nn.Sequential(nn.Conv2d(channels_in, channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU(),
                         nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(channels))


class ResNet8(nn.Module):
    """MLPerf Tiny's ResNet-8 shape (CIFAR-10): three stages, 1x1 stride-2 shortcuts."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.stage1 = _basic(16, 16, 1)
        self.stage2, self.short2 = _basic(16, 32, 2), nn.Conv2d(16, 32, 1, 2)
        self.stage3, self.short3 = _basic(32, 64, 2), nn.Conv2d(32, 64, 1, 2)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(64, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.stage1(x) + x)
        x = torch.relu(self.stage2(x) + self.short2(x))
        x = torch.relu(self.stage3(x) + self.short3(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def test_pytorch_resnet8():
    """The exporter copies repeated weights through Identity nodes; AdaptiveAvgPool2d(1) is a
    GlobalAveragePool (MEAN)."""
    torch.manual_seed(0)
    net = ResNet8().eval()
    x = np.random.default_rng(3).normal(size=(150, 3, 32, 32)).astype(F32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x[100:])).numpy()
    qmodel = tessera.quantize(net, calibration=x[:100])
    assert [op.kind for op in qmodel.graph.ops].count("ADD") == 3
    assert [op.kind for op in qmodel.graph.ops][-3:] == ["MEAN", "RESHAPE", "FULLY_CONNECTED"]
    y = qmodel.predict(x[100:])
    assert np.abs(y - expected).max() <= 0.02 * np.ptp(expected)
    assert np.mean(y.argmax(1) == expected.argmax(1)) >= 0.95


class ViewNet(nn.Module):
    """Flattens with x.view(x.size(0), -1) (shape arithmetic that the static export folds);
    Hardswish and Hardsigmoid become tables."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        x = nn.functional.hardswish(self.conv(x))
        return nn.functional.hardsigmoid(self.fc(x.view(x.size(0), -1)))


def test_pytorch_view_flatten_and_hard_activations():
    torch.manual_seed(1)
    net = ViewNet().eval()
    x = np.random.default_rng(4).normal(size=(160, 3, 6, 6)).astype(F32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x[100:])).numpy()
    qmodel = tessera.quantize(net, calibration=x[:100])
    assert [op.kind for op in qmodel.graph.ops] == ["CONV_2D", "LUT", "RESHAPE",
                                                    "FULLY_CONNECTED", "LUT"]
    # Outputs lie in [0, 1] (near 0.5 here): within 0.02, a few output steps of ~0.0025.
    assert np.abs(qmodel.predict(x[100:]) - expected).max() <= 0.02


def test_pytorch_mode_is_restored_and_refusals_name_the_node():
    net = _resnetish().train()
    x = np.random.default_rng(1).normal(size=(8, 3, 16, 16)).astype(F32)
    tessera.quantize(net, calibration=x)
    assert net.training                          # exported in eval mode, then put back
    net.avg = nn.AvgPool2d(2, padding=1)         # count_include_pad=True
    with pytest.raises(tessera.UnsupportedModelError,
                       match=r"PyTorch ResNetish \(exported to ONNX\): node '/avg/AveragePool' "
                             r"\(AveragePool\) counts the padding .*count_include_pad=False"):
        tessera.quantize(net, calibration=x)
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(tessera.UnsupportedModelError,
                       match=r"is a grouped convolution \(group=2\)"):
        tessera.quantize(grouped, calibration=np.zeros((2, 4, 3, 3), F32))
    with pytest.raises(ValueError, match=r"The PyTorch ResNetish cannot run on a calibration "
                                         r"sample of shape \(4, 3, 3\) \(Given groups=1.*\); "
                                         r"calibration must be a batch of the model's inputs"):
        tessera.quantize(_resnetish(), calibration=np.zeros((2, 4, 3, 3), F32))


def _float_onnx_cnn():
    """A hand-written float ONNX CNN: SAME_UPPER stride-2 Conv, an unfused BatchNormalization,
    Pad + depthwise Conv + Clip(0, 6), padded MaxPool, a residual Add, Concat,
    GlobalAveragePool, Flatten, Gemm, Softmax."""
    rng = np.random.default_rng(0)
    inits = {
        "w0": rng.normal(0, 0.4, (6, 3, 3, 3)), "b0": rng.normal(0, 0.1, 6),
        "g": rng.uniform(0.5, 1.5, 6), "beta": rng.normal(0, 0.1, 6),
        "mean": rng.normal(0, 0.1, 6), "var": rng.uniform(0.5, 1.5, 6),
        "wd": rng.normal(0, 0.4, (6, 1, 3, 3)), "bd": rng.normal(0, 0.1, 6),
        "lo": np.array(0.0), "hi": np.array(6.0), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1]),
        "w1": rng.normal(0, 0.4, (4, 6, 1, 1)),
        "wf": rng.normal(0, 0.4, (3, 10)), "bf": rng.normal(0, 0.1, 3),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="conv0", strides=[2, 2],
                         auto_pad="SAME_UPPER"),
        helper.make_node("BatchNormalization", ["c0", "g", "beta", "mean", "var"], ["n0"],
                         name="bn0", epsilon=1e-3),
        helper.make_node("Relu", ["n0"], ["r0"], name="relu0"),
        helper.make_node("Pad", ["r0", "pads"], ["r0p"], name="pad", mode="constant"),
        helper.make_node("Conv", ["r0p", "wd", "bd"], ["d0"], name="dw", group=6),
        helper.make_node("Clip", ["d0", "lo", "hi"], ["d1"], name="relu6"),
        helper.make_node("Add", ["d1", "r0"], ["s0"], name="residual"),
        helper.make_node("MaxPool", ["s0"], ["p0"], name="pool", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p0", "w1"], ["c1"], name="conv1x1"),
        helper.make_node("Concat", ["p0", "c1"], ["cat"], name="cat", axis=1),
        helper.make_node("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "float_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                           ["N", 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.asarray(v, np.int64 if k == "pads" else F32), k)
         for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_float_onnx_cnn_post_training_quantization(mode, tmp_path):
    model = _float_onnx_cnn()
    onnx.save(model, tmp_path / "cnn.onnx")
    x = np.random.default_rng(2).normal(size=(300, 3, 12, 12)).astype(F32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x[200:]})[0]
    graph, _ = float_graph_source(tmp_path / "cnn.onnx")
    np.testing.assert_allclose(graph.forward(_nhwc(x[200:])), expected, atol=1e-5)
    assert [op.kind for op in graph.ops][:4] == ["CONV_2D", "PAD", "DEPTHWISE_CONV_2D", "ADD"]
    assert graph.ops[0].attrs["padding"] == ((0, 1), (0, 1))          # SAME_UPPER, 12 -> 6
    qmodel = tessera.quantize(tmp_path / "cnn.onnx", calibration=x[:200], mode=mode)
    assert isinstance(qmodel, QuantizedGraph) and qmodel.input_layout == "NCHW"
    y = qmodel.predict(x[200:])
    assert np.abs(y - expected).max() <= 0.05 * np.ptp(expected)      # a peaked softmax
    assert np.mean(y.argmax(1) == expected.argmax(1)) >= 0.95


def test_float_onnx_cnn_refusals_name_the_node():
    model = _float_onnx_cnn()
    bn = next(n for n in model.graph.node if n.name == "bn0")
    bn.input[0] = "x"                             # BatchNormalization on the model input
    model.graph.node.remove(next(n for n in model.graph.node if n.name == "conv0"))
    model.graph.node.remove(bn)
    model.graph.node.insert(0, bn)
    model.graph.initializer.extend([numpy_helper.from_array(np.zeros((6, 3, 1, 1), F32),
                                                            "unused")])
    x = np.zeros((2, 3, 12, 12), F32)
    with pytest.raises(tessera.UnsupportedModelError,
                       match=r"node 'bn0' \(BatchNormalization\) does not directly follow a "
                             "convolution or dense layer"):
        tessera.quantize(model, calibration=x)
