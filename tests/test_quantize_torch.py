"""PyTorch importer: an nn.Sequential quantizes exactly like the equivalent NumPy layer list."""

import numpy as np
import pytest

import tessera

torch = pytest.importorskip("torch", reason="torch is an optional import format (extra 'torch')")
nn = torch.nn


def _fields(layer):
    return {name: getattr(layer, name) for name in (
        "name", "weight", "bias", "input_scale", "input_zero_point", "weight_scale",
        "output_scale", "output_zero_point", "mode", "activation", "lut", "lut_input_scale",
        "lut_input_zero_point")}


def _assert_identical(a, b):
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        fa, fb = _fields(la), _fields(lb)
        for key in fa:
            if isinstance(fa[key], np.ndarray):
                assert fa[key].dtype == fb[key].dtype
                np.testing.assert_array_equal(fa[key], fb[key])
            else:
                assert fa[key] == fb[key], key


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_torch_sequential_equals_numpy_list(mode):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.ReLU(),
        nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Dropout(0.1)),
        nn.Linear(8, 8, bias=False), nn.ReLU6(), nn.Linear(8, 3), nn.Sigmoid())
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    activations = ["relu", "tanh", "relu6", "sigmoid"]
    as_list = [(lin.weight.detach().numpy().T.copy(),
                None if lin.bias is None else lin.bias.detach().numpy().copy(), act)
               for lin, act in zip(linears, activations)]
    x = np.random.default_rng(0).normal(size=(200, 12)).astype(np.float32)
    from_torch = tessera.quantize(model, calibration=x, mode=mode)
    from_list = tessera.quantize(as_list, calibration=x, mode=mode)
    _assert_identical(from_torch, from_list)
    np.testing.assert_array_equal(from_torch.predict(x), from_list.predict(x))
    # The float reference equals PyTorch's own forward pass (float32 vs float64 rounding only).
    from tessera.quantize.floatmodel import float_forward
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(float_forward(from_torch.float_layers, x), expected, atol=1e-5)


def test_torch_unsupported_layers_are_named():
    with pytest.raises(tessera.UnsupportedModelError,
                       match=r"Unsupported PyTorch layer '1' \(Conv1d\); supported: "
                             r"Linear, ReLU, ReLU6, Sigmoid, Tanh, .*Flatten"):
        tessera.quantize(nn.Sequential(nn.Linear(4, 4), nn.Conv1d(1, 1, 1)),
                         calibration=np.zeros((2, 4)))

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) * 2

    with pytest.raises(tessera.UnsupportedModelError,
                       match=r"Unsupported PyTorch layer '<root>' \(Custom\)"):
        tessera.quantize(Custom(), calibration=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"PyTorch module '0' \(ReLU\) follows the start of the "
                                         "model; .*put exactly one activation after a Linear"):
        tessera.quantize(nn.Sequential(nn.ReLU(), nn.Linear(4, 2)), calibration=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"PyTorch module '2' \(Sigmoid\) follows activation "
                                         r"'relu' of layer 'fc0'"):
        tessera.quantize(nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Sigmoid()),
                         calibration=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="The PyTorch model contains no nn.Linear layer"):
        tessera.quantize(nn.Sequential(nn.Flatten()), calibration=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"Layer 'fc1' expects 3 inputs but layer 'fc0' produces "
                                         "2"):
        tessera.quantize(nn.Sequential(nn.Linear(4, 2), nn.Linear(3, 1)),
                         calibration=np.zeros((2, 4)))
