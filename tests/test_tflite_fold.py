"""Converter-made TFLite files with a dynamic batch: the constant shape arithmetic before each
RESHAPE (SHAPE, STRIDED_SLICE, PACK) is folded at import, the models equal TFLite Micro and
LiteRT bit for bit (LiteRT at a batch of 29, where the shape arithmetic runs for real), and shape
arithmetic that is not constant or not a RESHAPE's shape is refused naming the operator."""

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

import tessera

import make_tflite_fold_fixtures as fixtures
from test_keras_real import int8_inputs, tflm_run

NAMES = sorted(fixtures.FIXTURES)


def _path(name):
    return fixtures.FIXTURE_DIR / f"{name}.tflite"


def _litert_batch(model_bytes, x_q):
    """Run LiteRT's default interpreter once on the whole int8 batch (input resized to it)."""
    interpreter = Interpreter(model_content=model_bytes)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x_q.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x_q)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _operators(data):
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    return model, [codes[op.opcodeIndex] for op in model.subgraphs[0].operators]


def test_fixtures_regenerate(tmp_path):
    """The committed files are what the converter writes today."""
    for path in fixtures.write_fixtures(tmp_path):
        assert path.read_bytes() == _path(path.stem).read_bytes(), (
            f"{path.name}: the converter now writes other bytes; rerun "
            "tests/make_tflite_fold_fixtures.py and commit the files")


@pytest.mark.parametrize("name", NAMES)
def test_fixtures_hold_the_shape_arithmetic(name):
    """Each file has the converter's dynamic-batch Flatten: SHAPE -> STRIDED_SLICE -> PACK."""
    model, ops = _operators(_path(name).read_bytes())
    assert ops.count("SHAPE") == ops.count("STRIDED_SLICE") == ops.count("PACK") >= 1
    assert model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]].shapeSignature[0] == -1


@pytest.mark.parametrize("name", NAMES)
def test_folded_models_equal_tflm_and_litert(name):
    """Mode "tflite" equals TFLite Micro; mode "onnx" equals LiteRT run at batch 29."""
    data = _path(name).read_bytes()
    x_q = int8_inputs(fixtures.FIXTURES[name][0])
    model_tflite = tessera.load_model(_path(name), mode="tflite")
    model_onnx = tessera.load_model(_path(name), mode="onnx")
    # A dense chain stays a QuantizedModel (flattened rows); a graph keeps the input shape.
    rows = x_q.reshape(len(x_q), -1) if isinstance(model_onnx, tessera.QuantizedModel) else x_q
    y_tflm = tflm_run(data, x_q)
    assert len({row.tobytes() for row in y_tflm}) > len(x_q) // 2      # not a constant model
    np.testing.assert_array_equal(model_tflite.predict(rows, raw=True), y_tflm)
    np.testing.assert_array_equal(model_onnx.predict(rows, raw=True), _litert_batch(data, x_q))


def test_dense_chain_stays_a_quantized_model():
    """Folding leaves FULLY_CONNECTED chains on the accelerator's path (a QuantizedModel)."""
    model = tessera.load_model(_path("flatten_mlp"))
    assert isinstance(model, tessera.QuantizedModel)
    assert [layer.in_features for layer in model.layers] == [20, 6]


def _mutated(name, change):
    """Return the bytes of fixture ``name`` after ``change(model, subgraph, ops)``."""
    model, ops = _operators(_path(name).read_bytes())
    change(model, model.subgraphs[0], ops)
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _rewire(op, slot, tensor):
    op.inputs = [int(t) for t in op.inputs]       # the unpacked inputs are a read-only array
    op.inputs[slot] = int(tensor)


def _constant(model, g, name, values):
    """Append an int32 constant tensor; return its index."""
    buffer, tensor = schema.BufferT(), schema.TensorT()
    values = np.asarray(values, np.int32)
    buffer.data = np.frombuffer(values.tobytes(), np.uint8)
    tensor.shape, tensor.type, tensor.buffer, tensor.name = list(values.shape), \
        schema.TensorType.INT32, len(model.buffers), name
    model.buffers.append(buffer)
    g.tensors.append(tensor)
    return len(g.tensors) - 1


def _pack_as_concatenation(model, g, ops):
    # [batch] (a slice without shrink) ++ constant [20]: CONCATENATION instead of PACK.
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CONCATENATION
    code.version = 1
    model.operatorCodes.append(code)
    sliced, pack = g.operators[ops.index("STRIDED_SLICE")], g.operators[ops.index("PACK")]
    sliced.builtinOptions.shrinkAxisMask = 0
    g.tensors[sliced.outputs[0]].shape = [1]
    pack.opcodeIndex = len(model.operatorCodes) - 1
    pack.builtinOptionsType = schema.BuiltinOptions.ConcatenationOptions
    pack.builtinOptions = schema.ConcatenationOptionsT()
    _rewire(pack, 1, _constant(model, g, "features", [20]))


def test_concatenation_of_constants_folds():
    """A shape built by CONCATENATION ([batch] ++ [20]) folds like PACK, and runs the same."""
    data = _mutated("flatten_mlp", _pack_as_concatenation)
    assert _operators(data)[1].count("CONCATENATION") == 1
    x_q = int8_inputs(fixtures.FIXTURES["flatten_mlp"][0])
    model = tessera.load_model(data)
    np.testing.assert_array_equal(model.predict(x_q.reshape(len(x_q), -1), raw=True),
                                  _litert_batch(data, x_q))


def _slice_a_computed_tensor(model, g, ops):
    # STRIDED_SLICE reads the int8 activation instead of SHAPE's output.
    _rewire(g.operators[ops.index("STRIDED_SLICE")], 0, g.inputs[0])


def _shape_into_fully_connected(model, g, ops):
    # The first FULLY_CONNECTED takes the folded shape as its bias.
    _rewire(g.operators[ops.index("FULLY_CONNECTED")], 2,
            g.operators[ops.index("PACK")].outputs[0])


def _reshape_to_a_constant_batch(model, g, ops):
    # PACK [1, 20]: a constant 1 where the batch was (right at batch 1 only).
    _rewire(g.operators[ops.index("PACK")], 0, _constant(model, g, "constant_batch", 1))


@pytest.mark.parametrize("change, message", [
    (_slice_a_computed_tensor,
     "operator 1 (STRIDED_SLICE, output 'flatten_mlp_1/flatten_1/strided_slice') is not "
     "constant-foldable: its input 'serving_default_input:0' is computed from the model input"),
    (_shape_into_fully_connected,
     "operator 4 (FULLY_CONNECTED, output 'flatten_mlp_1/dense_relu_1/MatMul;"),
    (_reshape_to_a_constant_batch,
     "operator 3 (RESHAPE, output 'flatten_mlp_1/flatten_1/Reshape') reshapes to [1, 20] at "
     "batch 3, not its output shape [3, 20]"),
])
def test_unfoldable_shape_arithmetic_is_refused(change, message):
    data = _mutated("flatten_mlp", change)
    with pytest.raises(tessera.UnsupportedModelError) as info:
        tessera.load_model(data)
    assert message in str(info.value)
