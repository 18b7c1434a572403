"""The MLPerf Tiny models on the real sample inputs of the MLPerf Tiny repository.

``tests/data/mlperf_tiny/samples.npz`` (written by ``tests/make_mlperf_samples.py``) holds the
int8 inputs of the reference submissions: a KWS MFCC map and the MFCCs of a "marvin" clip, a
CIFAR-10 image (black) and the 196 windows of a normal ToyCar sound for the anomaly detector.
TFLite Micro (the ``tflite-micro`` wheel) must classify each sample as its source says where it
says something; Tessera's integer reference and the emulator with every CNN preset that holds
the model must then equal TFLite Micro bit for bit.
"""

from pathlib import Path

import numpy as np
import pytest

import tessera
from make_mlperf_samples import quantize_float_to_int8, write_npz
from tessera.cli.demo_kws import KWS_SAMPLES, tflite_micro_outputs
from tessera.compiler import CNN_PRESETS, ModelTooLarge

DATA = Path(__file__).parent / "data" / "mlperf_tiny"
SAMPLES = np.load(DATA / "samples.npz")
TASKS = ("kws", "ic", "ad")

#: The CNN presets each model does not fit (every other preset runs it on the emulator).
REFUSED = {"ic": {"orangecrab-25f-cnn"}}

#: Anomaly-detector windows run on the emulator (a dense chain streamed on the small presets,
#: ~0.7 s per window): the first, the last and the one holding the smallest input (no window
#: reaches -128 or 127).
AD_WINDOWS = (0, 195, int(np.argmin(SAMPLES["ad_inputs"].min(axis=1))))

_ORACLE = {}


def _samples(task):
    return SAMPLES[f"{task}_inputs"], DATA / str(SAMPLES[f"{task}_model"])


def _expected(task):
    """Return TFLite Micro's outputs on every sample of ``task`` (cached)."""
    if task not in _ORACLE:
        x, model = _samples(task)
        _ORACLE[task] = tflite_micro_outputs(model, x)
    return _ORACLE[task]


def test_samples_name_their_source():
    readme = (DATA / "README.md").read_text()
    assert str(SAMPLES["commit"]) in readme and str(SAMPLES["commit"]) in \
        (DATA / "NOTICE").read_text()
    assert "Apache License" in (DATA / "LICENSE").read_text()
    for task in TASKS:
        x, model = _samples(task)
        assert x.dtype == np.int8 and model.exists()
        assert len(SAMPLES[f"{task}_labels"]) == len(SAMPLES[f"{task}_sources"]) == len(x)
        assert all(s.startswith("benchmark/") for s in SAMPLES[f"{task}_sources"])
    assert SAMPLES["kws_inputs"].shape == (2, 49, 10, 1)
    assert SAMPLES["ic_inputs"].shape == (1, 32, 32, 3) and (SAMPLES["ic_inputs"] == -128).all()
    assert SAMPLES["ad_inputs"].shape == (196, 640)
    # Consecutive windows overlap by four slices of 128: the windowing of y_labels.csv.
    np.testing.assert_array_equal(SAMPLES["ad_inputs"][1:, :512], SAMPLES["ad_inputs"][:-1, 128:])


def test_the_extractor_rounds_as_the_reference_submission_and_writes_the_same_bytes(tmp_path):
    # QuantizeFloatToInt8: C's round() takes halves away from zero; clamped to int8.
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -300.0, 300.0], np.float32)
    np.testing.assert_array_equal(quantize_float_to_int8(x, 1.0, 0),
                                  [-3, -2, -1, 1, 2, 3, 0, -128, 127])
    np.testing.assert_array_equal(quantize_float_to_int8(x, 0.5, 10),
                                  [5, 7, 9, 11, 13, 15, 11, -128, 127])
    arrays = {k: SAMPLES[k] for k in SAMPLES}
    write_npz(tmp_path / "a.npz", arrays)
    write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes() == \
        (DATA / "samples.npz").read_bytes()


def test_the_packaged_kws_samples_are_the_tests():
    packaged = np.load(KWS_SAMPLES)
    assert set(packaged) == {k for k in SAMPLES if not k.startswith(("ic_", "ad_"))}
    for key in packaged:
        np.testing.assert_array_equal(packaged[key], SAMPLES[key])


def test_tflite_micro_gives_the_labels_the_sources_give():
    # The marvin clip is no keyword ("unknown"); the other KWS sample and the image carry no
    # label in the repository. The autoencoder gives no class (its score has no threshold).
    labels = SAMPLES["kws_labels"]
    known = labels >= 0
    assert known.sum() == 1
    np.testing.assert_array_equal(_expected("kws")[known].argmax(axis=1), labels[known])
    assert str(SAMPLES["kws_classes"][labels[known][0]]) == "unknown"


@pytest.mark.parametrize("task", TASKS)
def test_reference_equals_tflite_micro(task):
    x, path = _samples(task)
    model = tessera.load_model(path, mode="tflite")
    np.testing.assert_array_equal(model.predict(x, raw=True), _expected(task))


@pytest.mark.parametrize("task, preset", [(t, p) for t in TASKS for p in CNN_PRESETS
                                          if p not in REFUSED.get(t, ())])
def test_emulator_equals_tflite_micro(task, preset):
    x, path = _samples(task)
    index = list(AD_WINDOWS) if task == "ad" else slice(None)
    model = tessera.load_model(path, mode="tflite")
    with tessera.connect("emu", config=CNN_PRESETS[preset].config) as dev:
        out = dev.run(model, x[index], raw=True)
    np.testing.assert_array_equal(out, _expected(task)[index])


def test_refused_presets_are_too_small():
    x, path = _samples("ic")
    model = tessera.load_model(path, mode="tflite")
    for preset in REFUSED["ic"]:
        with tessera.connect("emu", config=CNN_PRESETS[preset].config) as dev, \
                pytest.raises(ModelTooLarge, match="does not fit the device resident: ACT"):
            dev.run(model, x, raw=True)
