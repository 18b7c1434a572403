"""Models we are not shown: random Keras CNNs (``tests/model_fuzz.py``) equal TFLite Micro.

Each seed builds a small ``tf.keras`` model from the fuzzer's vocabulary, converts it with the
real ``TFLiteConverter`` (full-integer int8) and requires ``tessera.load_model(...).predict``
and the emulated CNN device (``connect("emu", config=icebreaker-cnn)``) to equal the
``tflite-micro`` wheel on discriminating int8 inputs — or the import to refuse naming the
operator. Conversions are cached in one temporary directory per test session;
``bench/bench_model_fuzz.py`` runs many more seeds.
"""

import numpy as np
import pytest

import model_fuzz

SEEDS = [*range(11), 51]     # 51: tanh -> avg pool -> sigmoid (LOGISTIC at scale 1/128)


@pytest.fixture(scope="session")
def fuzz_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model_fuzz")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_keras_model_equals_tflm(seed, fuzz_cache):
    data, text = model_fuzz.convert_cached(seed, fuzz_cache)
    outcome, detail = model_fuzz.check(data, seed=seed)
    assert outcome in ("equal", "refused"), (text, detail)


def _parameters(data):
    import tessera
    graph = tessera.load_model(data, mode="tflite").graph
    return [op.kind for op in graph.ops], [
        (t.shape, None if t.data is None else t.data.tobytes(),
         None if t.qparams is None else (t.qparams.scale.tobytes(), t.qparams.zero_point.tobytes()))
        for t in graph.tensors.values()]


def test_models_are_reproducible(fuzz_cache):
    # The same seed builds the same layers, weights and quantization (names aside).
    from tessera.quantize.tflite_convert import keras_to_int8_tflite
    model, rows, text = model_fuzz.build(3)
    again, _ = model_fuzz.convert_cached(3, fuzz_cache)
    assert text == model_fuzz.describe(3)
    assert _parameters(keras_to_int8_tflite(model, rows)) == _parameters(again)


def test_relu6_after_concatenate_equals_tflm():
    """The converter gives this RELU6 different input and output quantizations: TFLite Micro
    clamps the raw input (and ignores the output's), which LiteRT's table did not."""
    from make_tflite_fixtures import _randomise

    from tessera.quantize.tflite_convert import keras_to_int8_tflite
    tf = model_fuzz._tf()
    L = tf.keras.layers
    inp = tf.keras.Input((8, 8, 3), batch_size=1)
    x = L.Concatenate()([L.Conv2D(4, 3, padding="same")(inp), L.Conv2D(3, 1)(inp)])
    x = L.Conv2D(5, 3)(L.ReLU(6.0)(x))
    model = tf.keras.Model(inp, L.Dense(4)(L.GlobalAveragePooling2D()(x)))
    _randomise(model, 7)
    rows = np.random.default_rng(0).uniform(-1, 1, (32, 8, 8, 3)).astype(np.float32)
    data = keras_to_int8_tflite(model, rows)
    import tessera
    qgraph = tessera.load_model(data, mode="tflite")
    assert "LUT" in [op.kind for op in qgraph.graph.ops]      # the quantizations differ
    assert model_fuzz.check(data, seed=7)[0] == "equal"


def test_decomposed_hard_swish_equals_tflm():
    """hard_swish followed by ReLU converts to ADD(x, 3) + RELU6, MUL by 1/6 and MUL(x, .):
    the constant operations are tables, the product a MUL (found by the fuzzer, seed 65 of
    version 1)."""
    from make_tflite_fixtures import _randomise

    from tessera.quantize.tflite_convert import keras_to_int8_tflite
    tf = model_fuzz._tf()
    L = tf.keras.layers
    inp = tf.keras.Input((6, 5, 2), batch_size=1)
    x = L.ReLU()(L.Activation("hard_swish")(L.Conv2D(3, 3, padding="same")(inp)))
    model = tf.keras.Model(inp, L.Dense(4)(L.Flatten()(x)))
    _randomise(model, 65)
    rows = np.random.default_rng(1).uniform(-1, 1, (32, 6, 5, 2)).astype(np.float32)
    data = keras_to_int8_tflite(model, rows)
    assert "MUL" in model_fuzz.operators(data)
    assert model_fuzz.check(data, seed=65)[0] == "equal"


def test_squeeze_excite_block_equals_tflm():
    """A squeeze-excite block (MobileNetV3): global pool with keepdims, Dense on the 1x1 map
    (FULLY_CONNECTED with keep_num_dims), sigmoid, and a MUL broadcasting [1, 1, C] over the
    map."""
    from make_tflite_fixtures import _randomise

    from tessera.quantize.tflite_convert import keras_to_int8_tflite
    tf = model_fuzz._tf()
    L = tf.keras.layers
    inp = tf.keras.Input((8, 8, 3), batch_size=1)
    c = L.Conv2D(4, 3, padding="same")(inp)
    s = L.GlobalAveragePooling2D(keepdims=True)(c)
    s = L.Dense(4, activation="sigmoid")(L.Dense(2, activation="relu")(s))
    model = tf.keras.Model(inp, L.Dense(3)(L.Flatten()(L.Multiply()([c, s]))))
    _randomise(model, 3)
    rows = np.random.default_rng(0).uniform(-1, 1, (32, 8, 8, 3)).astype(np.float32)
    data = keras_to_int8_tflite(model, rows)
    assert "MUL" in model_fuzz.operators(data)
    assert model_fuzz.check(data, seed=3)[0] == "equal"
