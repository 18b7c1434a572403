"""QONNX and Brevitas QCDQ models import bit-exactly to QONNX's own executor.

A Brevitas-trained 4-bit MLP (power-of-two scales) round-trips through ``export_qonnx`` and
``export_onnx_qcdq`` into Tessera and equals ``qonnx.core.onnx_exec.execute_onnx`` — and the
emulator — on digits, ties and saturating inputs; hand-written QONNX chains cover narrower and
wider grids (2-bit and 12-bit weights, bipolar weights, 3-bit unsigned, 6-bit narrow and 16-bit
activations, ``Trunc``); malformed or unsupported graphs are refused naming the node.
"""

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tessera

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("brevitas_digits",
                                               ROOT / "examples" / "brevitas_digits.py")
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)

DOMAIN = "qonnx.custom_op.general"


def _inputs(k, scale, *, seed=0, rows=200):
    """Float rows: random, exact ties between grid steps, zeros and both saturating extremes."""
    rng = np.random.default_rng(seed)
    ties = (rng.integers(-300, 300, size=(rows // 4, k)) + 0.5) * scale
    extremes = np.stack([np.zeros(k), np.full(k, 1e3), np.full(k, -1e3),
                         np.where(np.arange(k) % 2, 1e3, -1e3)])
    random = rng.uniform(-40 * scale, 140 * scale, size=(rows, k))
    return np.concatenate([random, ties, extremes]).astype(np.float32)


# -- Brevitas ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    """Return ``train(bits)``: a Brevitas MLP 64-12-10 trained for 4 epochs (cached per width)."""
    x_train, _, y_train, _ = example.digits()
    cache = {}

    def train(bits):
        if bits not in cache:
            net = example.brevitas_mlp((64, 12, 10), bits=bits, signed=bits == 16)
            cache[bits] = example.train(net, x_train[:512], y_train[:512], epochs=4)
        return cache[bits]
    return train


def _brevitas_round_trip(tmp_path, net, *, qcdq):
    path = tmp_path / "mlp.onnx"
    with example.quiet():
        import torch
        from brevitas.export import export_onnx_qcdq, export_qonnx
        export = export_onnx_qcdq if qcdq else export_qonnx
        export(net, torch.zeros(1, 64), export_path=str(path), dynamo=False)
    model = tessera.load_model(path)
    x = np.concatenate([example.digits()[1], _inputs(64, 1 / 16)])
    expected = example.qonnx_execute(path, x)
    assert len({row.tobytes() for row in expected}) > len(x) // 4       # not a constant model
    config = tessera.AcceleratorConfig().with_widths(model.input_bits, model.input_bits)
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(model, x), model.predict(x))
    return model, model.predict(x), expected


@pytest.mark.parametrize("bits, qcdq", [(4, False), (4, True), (8, False)],
                         ids=["int4-qonnx", "int4-qcdq", "int8-qonnx"])
def test_brevitas_round_trips_bit_exact(tmp_path, trained, bits, qcdq):
    """QAT int4/int8 -> QONNX/QCDQ -> Tessera equals QONNX's executor (predict and emulator)."""
    model, y, expected = _brevitas_round_trip(tmp_path, trained(bits), qcdq=qcdq)
    assert [(q.input_bits, q.weight_bits, q.activation) for q in model.layers] == \
        [(bits, bits, "none"), (bits, bits, "none")]
    assert "bit for bit" in model.info["matches"]
    np.testing.assert_array_equal(y, expected)


def test_brevitas_16bit_is_within_one_step(tmp_path, trained):
    """16-bit accumulators pass 2**24: QONNX's float32 Gemm rounds, Tessera is exact integer."""
    model, y, expected = _brevitas_round_trip(tmp_path, trained(16), qcdq=False)
    assert [(q.input_bits, q.activation) for q in model.layers] == [(16, "relu"), (16, "none")]
    assert "up to one step" in model.info["matches"]
    assert np.max(np.abs(y - expected)) <= model.output_scale
    assert np.mean(y == expected) > 0.99


def test_brevitas_default_export_and_float_scales(tmp_path):
    """The default (dynamo) export imports too; with float scales Tessera is within one step."""
    x_train, x_test, y_train, _ = example.digits()
    net = example.train(example.brevitas_mlp((64, 12, 10), fixed_point=False), x_train[:512],
                        y_train[:512], epochs=1)
    path = example.export(net, tmp_path / "float_scales.onnx", in_features=64)
    model = tessera.load_model(path)
    assert "up to one step" in model.info["matches"]
    y, expected = model.predict(x_test), example.qonnx_execute(path, x_test)
    assert np.max(np.abs(y - expected)) <= model.output_scale * 1.0001
    assert np.mean(y == expected) > 0.9


# -- hand-written QONNX chains ------------------------------------------------------------------

class Chain:
    """A QONNX graph under construction: Quant nodes, Gemm layers and constants."""

    def __init__(self, k):
        self.k, self.nodes, self.inits, self.current = k, [], [], "x"

    def const(self, name, value, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op, inputs, name, domain="", **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, domain=domain, **attrs))
        self.current = name
        return name

    def quant(self, x, name, scale, bits, *, zp=0.0, signed=1, narrow=0, rounding="ROUND"):
        ins = [x, self.const(f"{name}.s", scale), self.const(f"{name}.z", zp),
               self.const(f"{name}.b", bits)]
        return self.node("Quant", ins, name, DOMAIN, signed=signed, narrow=narrow,
                         rounding_mode=rounding)

    def gemm(self, name, w, w_scale, w_bits, x_scale, *, bias=True, bipolar=False, narrow=1):
        wq = f"{name}.wq"
        if bipolar:
            self.node("BipolarQuant", [self.const(f"{name}.w", w), self.const(f"{name}.ws",
                                                                             w_scale)], wq, DOMAIN)
        else:
            self.quant(self.const(f"{name}.w", w), wq, w_scale, w_bits, narrow=narrow)
        ins = [self.current_input, wq]
        if bias is not None:
            b = bias if not isinstance(bias, bool) else \
                np.random.default_rng(len(self.nodes)).normal(0, 4, w.shape[0]) * x_scale * w_scale
            if isinstance(bias, bool):
                ins.append(self.quant(self.const(f"{name}.b", b), f"{name}.bq",
                                      np.float32(x_scale) * np.float32(w_scale), 32))
            else:
                ins.append(self.const(f"{name}.b", b))
        return self.node("Gemm", ins, name, transB=1)

    def model(self):
        graph = helper.make_graph(
            self.nodes, "qonnx_chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [1, self.k])],
            [helper.make_tensor_value_info(self.current, TensorProto.FLOAT, [1, None])],
            self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                       helper.make_opsetid(DOMAIN, 1)])


def _weights(rng, n, k, bits):
    top = (1 << (bits - 1)) - 1
    return rng.integers(-top, top + 1, size=(n, k)).astype(np.float32)


def _mixed_widths_chain():
    """8-bit activations: 2-bit, bipolar and 12-bit weights; 3-bit, 6-bit narrow grids; Trunc."""
    rng = np.random.default_rng(1)
    c = Chain(16)
    sx = 2.0 ** -4
    c.current_input = c.quant("x", "q_in", sx, 8)
    c.gemm("fc0", _weights(rng, 12, 16, 2) * 0.5, 0.5, 2, sx)
    c.node("Relu", [c.current], "relu0")
    s1 = 2.0 ** -1
    c.current_input = c.quant("relu0", "q0", s1, 3, signed=0)            # unsigned 3-bit
    c.gemm("fc1", np.sign(rng.normal(size=(10, 12))) * 0.25, 0.25, 1, s1, bipolar=True)
    s2 = 2.0 ** -2
    c.current_input = c.quant("fc1", "q1", s2, 6, narrow=1)              # signed narrow 6-bit
    c.gemm("fc2", _weights(rng, 6, 10, 12) * 2.0 ** -9, 2.0 ** -9, 12, s2)
    s3 = 2.0 ** -3
    c.quant("fc2", "q2", s3, 8)
    c.node("Trunc", ["q2", c.const("t.s", s3), c.const("t.z", 0.0), c.const("t.i", 8.0),
                     c.const("t.o", 5.0)], "trunc", DOMAIN, rounding_mode="FLOOR")
    return c.model(), sx


def _wide_chain():
    """16-bit activations: a 10-bit unsigned hidden grid and a 16-bit output."""
    rng = np.random.default_rng(2)
    c = Chain(8)
    sx = 2.0 ** -8
    c.current_input = c.quant("x", "q_in", sx, 16)
    c.gemm("fc0", _weights(rng, 5, 8, 8) * 2.0 ** -6, 2.0 ** -6, 8, sx)
    c.node("Relu", [c.current], "relu0")
    c.current_input = c.quant("relu0", "q0", 2.0 ** -6, 10, signed=0)
    c.gemm("fc1", _weights(rng, 3, 5, 4) * 0.125, 0.125, 4, 2.0 ** -6)
    c.quant("fc1", "q1", 2.0 ** -9, 16)
    return c.model(), sx


@pytest.mark.parametrize("build, widths, config", [
    (_mixed_widths_chain, [(8, 4, "relu"), (8, 4, "lut"), (8, 16, "lut")], (8, 16)),
    (_wide_chain, [(16, 8, "relu"), (16, 4, "none")], (16, 8)),
], ids=["mixed-8bit", "wide-16bit"])
def test_hand_written_chains_equal_qonnx(tmp_path, build, widths, config):
    """Each chain equals QONNX's executor in predict and on the emulator at its widths."""
    model_proto, sx = build()
    path = tmp_path / "chain.onnx"
    onnx.save(model_proto, path)
    model = tessera.load_model(path)
    assert [(q.input_bits, q.weight_bits, q.activation) for q in model.layers] == widths
    x = _inputs(model.in_features, sx)
    expected = example.qonnx_execute(path, x)
    assert len({row.tobytes() for row in expected}) > len(x) // 4
    np.testing.assert_array_equal(model.predict(x), expected)
    with tessera.connect("emu", config=tessera.AcceleratorConfig().with_widths(*config)) as dev:
        np.testing.assert_array_equal(dev.run(model, x), expected)


def test_flattened_image_input_and_bipolar_activation(tmp_path):
    """An image input flattened before the first layer, and a BipolarQuant activation table."""
    rng = np.random.default_rng(4)
    c = Chain(16)
    sx = 2.0 ** -3
    c.quant("x", "q_in", sx, 8)
    c.current_input = c.node("Flatten", ["q_in"], "flatten", axis=1)
    c.gemm("fc0", _weights(rng, 6, 16, 8) * 2.0 ** -7, 2.0 ** -7, 8, sx)
    c.quant("fc0", "q0", 2.0 ** -2, 8)
    c.current_input = c.node("BipolarQuant", ["q0", c.const("bq.s", 0.5)], "bipolar", DOMAIN)
    c.gemm("fc1", _weights(rng, 3, 6, 4) * 0.25, 0.25, 4, 0.5)
    c.quant("fc1", "q1", 0.25, 8)
    proto = c.model()
    proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1
    for size in (4, 4):
        proto.graph.input[0].type.tensor_type.shape.dim.add().dim_value = size
    path = tmp_path / "image.onnx"
    onnx.save(proto, path)
    model = tessera.load_model(path)
    assert [q.activation for q in model.layers] == ["lut", "none"]
    x = _inputs(16, sx).reshape(-1, 1, 4, 4)
    expected = example.qonnx_execute(path, x)
    assert len({row.tobytes() for row in expected}) > 8
    np.testing.assert_array_equal(model.predict(x.reshape(len(x), -1)), expected)


# -- refusals ----------------------------------------------------------------------------------

def _base(*, out_quant=True, rounding="ROUND", bias=True, hidden_bits=4, hidden_signed=0,
          narrow=0, act_scale=0.5, extra=None):
    rng = np.random.default_rng(3)
    c = Chain(6)
    c.current_input = c.quant("x", "q_in", 0.25, 4)
    c.gemm("fc0", _weights(rng, 4, 6, 4) * 0.5, 0.5, 4, 0.25, bias=bias)
    c.current_input = c.quant("fc0", "q0", act_scale, hidden_bits, signed=hidden_signed,
                              narrow=narrow, rounding=rounding)
    if extra:
        extra(c)
    c.gemm("fc1", _weights(rng, 3, 4, 4) * 0.5, 0.5, 4, 0.5)
    if out_quant:
        c.quant("fc1", "q1", 0.5, 4)
    return c.model()


def _sigmoid(c):
    c.current_input = c.node("Sigmoid", [c.current], "sig")


def _trunc_input(c):
    c.current_input = c.node("Trunc", ["x", c.const("t.s", 0.25), c.const("t.z", 0.0),
                                       c.const("t.i", 4.0), c.const("t.o", 2.0)], "trunc",
                             DOMAIN, rounding_mode="FLOOR")


def _bad_bit_width():
    model = _base()
    next(t for t in model.graph.initializer if t.name == "q0.b").CopyFrom(
        numpy_helper.from_array(np.float32(2.5), "q0.b"))
    return model


@pytest.mark.parametrize("model, message", [
    (_base(extra=_sigmoid), "unsupported operator in node 'sig' (Sigmoid)"),
    (_base(out_quant=False), "the output of node 'fc1' (Gemm) is not quantized"),
    (_base(rounding="FLOOR"), f"node 'q0' ({DOMAIN}.Quant) rounds FLOOR"),
    (_base(bias=np.float32([0.3, 0.1, -0.2, 0.7])),
     "node 'fc0' (Gemm) has a float bias that is not on the accumulator's grid"),
    (_base(extra=_trunc_input), f"node 'trunc' ({DOMAIN}.Trunc) does not follow a quantized layer"),
    (_base(hidden_bits=3, hidden_signed=1),
     "fit none of Tessera's activation widths (4, 8, 16): 4 bits: the output of node 'fc0' "
     "(Gemm) (integers -4..3) needs a lookup table"),
    (_base(act_scale=np.float32([[0.5, 0.25, 0.5, 0.5]])),
     f"node 'q0' ({DOMAIN}.Quant) quantizes an activation per channel"),
    (_bad_bit_width(), f"node 'q0' ({DOMAIN}.Quant) has bit width [2.5]; Tessera needs one "
     "integer"),
], ids=["operator", "no-output-quant", "rounding", "float-bias", "trunc-on-input",
        "narrow-signed-4bit", "per-channel-activation", "bit-width"])
def test_unsupported_qonnx_is_refused_naming_the_node(model, message):
    with pytest.raises(tessera.UnsupportedModelError) as info:
        tessera.load_model(model)
    assert message in str(info.value)


def test_bias_off_the_accumulator_grid_is_refused():
    model = _base()
    scale = next(t for t in model.graph.initializer if t.name == "fc0.bq.s")
    scale.CopyFrom(numpy_helper.from_array(np.float32(0.25), "fc0.bq.s"))
    with pytest.raises(tessera.UnsupportedModelError, match="node 'fc0' .Gemm. has a bias whose "
                       "grid is not input_scale . weight_scale"):
        tessera.load_model(model)


def test_qonnx_model_refuses_calibration_and_mode_tflite():
    with pytest.raises(ValueError, match="already quantized"):
        tessera.quantize(_base(), calibration=np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="use mode 'onnx'"):
        tessera.quantize(_base(), mode="tflite")
