"""Extract the real sample inputs of the MLPerf Tiny repository into int8 model inputs.

Run ``.venv/bin/python tests/make_mlperf_samples.py --repo DIR`` with ``DIR`` a clone of
https://github.com/mlcommons/tiny (Apache-2.0; a bare clone will do) that holds commit
:data:`COMMIT`, the commit of the four models in ``tests/data/mlperf_tiny/``. Every file is read
at that commit (``git show COMMIT:path``), so the output does not depend on the clone's checkout.
It writes

- ``tests/data/mlperf_tiny/samples.npz``: for each model ``m`` in ``kws``, ``ic``, ``ad``,
  ``m_inputs`` (the int8 tensors the model is fed), ``m_labels`` (the expected class, ``-1``
  where the source names none), ``m_sources`` (the file each sample comes from and how),
  ``m_model`` (the model file) and ``m_classes`` (class names); ``commit`` and ``repository``;
- ``src/tessera/data/mlperf_tiny/kws_samples.npz``: the ``kws_*`` arrays, ``commit`` and
  ``repository`` again, for ``tessera demo`` (``tests/test_mlperf_samples.py`` checks they agree).

The samples, and how the reference code turns each into the model's input:

- KWS, ``reference_submissions/keyword_spotting/kws/kws_input_data.cc``: one int8 49x10 MFCC map,
  fed as is (``th_load_tensor``); the source does not say which keyword it is.
- KWS, ``runner/sd_card/marvin_617de221_0.wav``: a Speech Commands clip of "marvin", which is
  none of the model's ten keywords, so the expected class is "unknown". Its MFCCs are computed
  with TensorFlow's ``tf.signal`` exactly as ``training/keyword_spotting/get_dataset.py`` does
  (clip scaled by its maximum, 30 ms Hann windows every 20 ms, 40 mel bins 20-4000 Hz, log,
  10 MFCCs) and quantized as ``make_bin_files.py`` does (``int8(x / scale + zero_point)``, a
  truncation). The two channels of the file are identical; the first is used.
- IC, ``reference_submissions/image_classification/ic/ic_inputs.cc``: one uint8 32x32x3 image
  (all zeros: a black image), fed as ``uint8 - 128`` (``th_load_tensor``); no label given.
- AD, ``reference_submissions/anomaly_detection/datasets/dcase01/normal_id_01_00000000_hist_
  librosa.bin``: 200 slices of 128 float32 log-mel energies; the runner sends windows of 2560
  bytes every 512 (``evaluation/datasets/ad01/y_labels.csv``: ``2560,512``), i.e. 196 windows of
  5 slices, each quantized by ``th_load_tensor`` as ``QuantizeFloatToInt8``: C's ``round`` (half
  away from zero) of ``x / scale`` plus the zero point, clamped. Label 0: a normal sound.

The KWS wav needs TensorFlow (the ``dev`` extra); the rest NumPy and the tflite-micro wheel (for
the models' input quantization). The archive is written with fixed timestamps: a rerun writes the
same bytes when TensorFlow computes the same MFCCs.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import wave
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["COMMIT", "SAMPLES", "PACKAGED_SAMPLES", "KWS_CLASSES", "IC_CLASSES", "extract",
           "quantize_float_to_int8", "write_npz"]

#: The mlcommons/tiny commit of the models and of these samples.
COMMIT = "1afd2c9820f795965a6134facd0b4dfae41ef23f"
REPOSITORY = "https://github.com/mlcommons/tiny"

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data" / "mlperf_tiny" / "samples.npz"
PACKAGED_SAMPLES = ROOT / "src" / "tessera" / "data" / "mlperf_tiny" / "kws_samples.npz"
MODELS = ROOT / "tests" / "data" / "mlperf_tiny"

#: ``kws_model_settings.cc``'s kCategoryLabels.
KWS_CLASSES = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "silence",
               "unknown")
#: ``ic_model_settings.cc``'s labels (CIFAR-10; the file misses the comma after "ship").
IC_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
              "truck")

_SUB = "benchmark/reference_submissions"
KWS_CC = f"{_SUB}/keyword_spotting/kws/kws_input_data.cc"
KWS_WAV = "benchmark/runner/sd_card/marvin_617de221_0.wav"
IC_CC = f"{_SUB}/image_classification/ic/ic_inputs.cc"
AD_BIN = f"{_SUB}/anomaly_detection/datasets/dcase01/normal_id_01_00000000_hist_librosa.bin"
AD_WINDOW, AD_STRIDE = 640, 128         # floats: y_labels.csv's 2560 and 512 bytes


def _show(repo, path) -> bytes:
    try:
        return subprocess.run(["git", "-C", str(repo), "show", f"{COMMIT}:{path}"],
                              capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"Cannot read {path} at {COMMIT[:12]} in {repo}: "
                         f"{e.stderr.decode().strip()}; pass --repo a clone of {REPOSITORY} "
                         f"that has this commit") from None


def _c_array(source: bytes) -> np.ndarray:
    """Return the integers of the first array initializer in C source ``source``."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", source.decode(), flags=re.S)
    body = text[text.index("= {"):text.index("};")]
    return np.array([int(v) for v in re.findall(r"-?\d+", body)], dtype=np.int64)


def _input_quantization(model):
    from tflite_micro.python.tflite_micro import runtime as tflm
    q = tflm.Interpreter.from_file(str(MODELS / model)).get_input_details(0)
    q = q["quantization_parameters"]
    return np.float32(q["scales"][0]), int(q["zero_points"][0])


def quantize_float_to_int8(x, scale, zero_point) -> np.ndarray:
    """Return ``QuantizeFloatToInt8`` of the reference submissions' ``quantization_helpers.h``.

    ``round(value / scale) + zero_point`` clamped to int8: a float32 quotient, C's ``round``
    (half away from zero, unlike NumPy's half to even).
    """
    ratio = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64)
    rounded = np.sign(ratio) * np.floor(np.abs(ratio) + 0.5)
    return np.clip(rounded + zero_point, -128, 127).astype(np.int8)


def _kws_mfcc(wav: bytes) -> np.ndarray:
    """Return the float MFCCs (49, 10, 1) of ``get_dataset.py``'s mfcc front end."""
    import tensorflow as tf
    with wave.open(io.BytesIO(wav)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
    if not (pcm == pcm[:, :1]).all():
        raise SystemExit(f"{KWS_WAV}: its channels differ; expected one clip twice")
    audio = tf.cast(pcm[:, 0], tf.float32)
    audio = audio / tf.reduce_max(audio)
    audio = tf.pad(audio, [[0, 16000 - tf.shape(audio)[-1]]])
    stfts = tf.signal.stft(audio, frame_length=480, frame_step=320, fft_length=None,
                           window_fn=tf.signal.hann_window)
    mel = tf.signal.linear_to_mel_weight_matrix(40, stfts.shape[-1], 16000, 20.0, 4000.0)
    log_mel = tf.math.log(tf.tensordot(tf.abs(stfts), mel, 1) + 1e-6)
    mfccs = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :10]
    return tf.reshape(mfccs, [49, 10, 1]).numpy()


def extract(repo) -> dict:
    """Return the arrays of ``samples.npz`` read from the mlcommons/tiny clone ``repo``."""
    kws = _c_array(_show(repo, KWS_CC)).reshape(1, 49, 10, 1)
    scale, zero_point = _input_quantization("kws_ref_model.tflite")
    mfcc = _kws_mfcc(_show(repo, KWS_WAV)) / scale + zero_point
    if not ((-128 <= mfcc) & (mfcc < 128)).all():
        raise SystemExit(f"{KWS_WAV}: MFCCs outside int8 after quantization")
    kws = np.concatenate([kws, mfcc.astype(np.int8)[None]])
    ic = _c_array(_show(repo, IC_CC)).reshape(1, 32, 32, 3) - 128
    floats = np.frombuffer(_show(repo, AD_BIN), "<f4")
    starts = range(0, len(floats) - AD_WINDOW + 1, AD_STRIDE)
    windows = np.stack([floats[s:s + AD_WINDOW] for s in starts])
    ad = quantize_float_to_int8(windows, *_input_quantization("ad01_int8.tflite"))
    return {
        "repository": np.array(REPOSITORY), "commit": np.array(COMMIT),
        "kws_model": np.array("kws_ref_model.tflite"), "kws_classes": np.array(KWS_CLASSES),
        "kws_inputs": kws.astype(np.int8),
        "kws_labels": np.array([-1, KWS_CLASSES.index("unknown")]),
        "kws_sources": np.array([
            f"{KWS_CC}: g_kws_inputs[0], as fed by th_load_tensor (no keyword given)",
            f"{KWS_WAV}: 'marvin' (not a keyword), MFCCs of training/keyword_spotting/"
            f"get_dataset.py (TensorFlow), quantized as make_bin_files.py"]),
        "ic_model": np.array("pretrainedResnet_quant.tflite"), "ic_classes": np.array(IC_CLASSES),
        "ic_inputs": ic.astype(np.int8), "ic_labels": np.array([-1]),
        "ic_sources": np.array([f"{IC_CC}: g_ic_inputs[0] (all zeros), fed as uint8 - 128 by "
                                f"th_load_tensor (no label given)"]),
        "ad_model": np.array("ad01_int8.tflite"), "ad_classes": np.array(("normal", "anomaly")),
        "ad_inputs": ad.astype(np.int8), "ad_labels": np.zeros(len(ad), dtype=np.int64),
        "ad_sources": np.array([f"{AD_BIN}: floats {s}..{s + AD_WINDOW - 1}, quantized by "
                                f"th_load_tensor (QuantizeFloatToInt8)" for s in starts]),
    }


def write_npz(path, arrays):
    """Write ``arrays`` as an ``.npz`` whose bytes depend only on the arrays (no timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help=f"a clone of {REPOSITORY}")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")    # TensorFlow's start-up banner
    arrays = extract(args.repo)
    write_npz(SAMPLES, arrays)
    write_npz(PACKAGED_SAMPLES,
              {k: v for k, v in arrays.items() if not k.startswith(("ic_", "ad_"))})
    for m in ("kws", "ic", "ad"):
        print(f"{m}: {len(arrays[f'{m}_inputs'])} samples {arrays[f'{m}_inputs'].shape[1:]}")
    print(f"wrote {SAMPLES} and {PACKAGED_SAMPLES}")


if __name__ == "__main__":
    main()
