"""``tessera quantize``: quantize a model file and save it for ``tessera run`` and ``compile``.

The command form of :func:`tessera.quantize`: a float model (ONNX, or an ``.npz`` of float layers
as ``tessera explore`` reads them) is calibrated on ``--calibration``; a pre-quantized model (ONNX
QDQ/QOperator, int8 TFLite) is imported with its parameters unchanged. The result is written with
its ``save`` and its summary printed: a :class:`tessera.QuantizedModel` for a chain of dense
layers, a :class:`tessera.graph.QuantizedGraph` for a CNN (``tessera run`` and ``compile`` take it
with a ``--config`` that has the CNN features; ``tessera info MODEL`` reports it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run", "read_model"]

_EXAMPLES = """\
examples:
  tessera quantize mlp.onnx --calibration calib.npy -o mlp.npz
  tessera quantize mlp.onnx --calibration calib.npy --bits 4 --no-per-channel -o mlp4.npz
  tessera quantize layers.npz --calibration calib.npy --mode tflite -o mlp.npz
  tessera quantize mlp_qdq.onnx -o mlp.npz          # already quantized: kept exactly
  tessera run mlp.npz --input x.npy --device emu --check

MODEL is a float .onnx file, an .npz of float layers (arrays w0, b0, act0, w1, ...: W shaped
[in_features, out_features], act a string such as "relu"; see docs/explore.md), an ONNX model
quantized by ONNX Runtime (QDQ or QOperator) or an int8 .tflite file.
"""


def add_parser(subparsers):
    """Register ``tessera quantize``."""
    p = subparsers.add_parser(
        "quantize", help="quantize a model file (float ONNX, float layers, QDQ ONNX, TFLite)",
        description=__doc__.split("\n\n")[1].replace("\n", " "), epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help=".onnx, .tflite or an .npz of float layers")
    p.add_argument("--calibration", metavar="FILE",
                   help="float calibration inputs, a .npy array [M, in_features] (required for "
                        "float models, refused for pre-quantized ones)")
    p.add_argument("--mode", choices=("onnx", "tflite"),
                   help="requantization rule (default: onnx, or the pre-quantized model's "
                        "runtime); see docs/numerics.md")
    p.add_argument("--bits", type=int, choices=(4, 8, 16), default=8,
                   help="activation width, and weight width unless --weight-bits (default 8)")
    p.add_argument("--weight-bits", type=int, choices=(4, 8, 16),
                   help="weight width when it differs from --bits")
    p.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=True,
                   help="one weight scale per output channel (default) or, with "
                        "--no-per-channel, one per layer")
    p.add_argument("--calibration-method", choices=("minmax", "percentile"), default="minmax",
                   help="activation range observer (default minmax)")
    p.add_argument("--percentile", type=float, default=99.99,
                   help="with --calibration-method percentile: the central percentage of "
                        "values kept (default 99.99)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.npz",
                   help="where to write the quantized model (.npz)")
    return p


def _output_path(text) -> Path:
    path = Path(text)
    if path.is_dir():
        raise IsADirectoryError(f"-o {text} is a directory; give a file name such as "
                                f"{path / 'model.npz'}")
    if path.suffix.lower() != ".npz":
        raise ValueError(f"-o {text}: name the file *.npz (tessera run and compile choose the "
                         "reader by the suffix)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"-o {text}: directory {path.parent} does not exist; create it "
                                "first")
    return path


def read_model(path, calibration=None, **options):
    """Return the quantized model of the file ``path`` (see the module docstring).

    ``options`` are passed to :func:`tessera.quantize`.
    """
    import tessera
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Model file {path} does not exist")
    if path.suffix.lower() == ".npz":
        import zipfile

        from tessera.explore.sources import load_float_layers

        from tessera.numpy_files import check_npz
        with zipfile.ZipFile(check_npz(path)) as archive:
            if "meta.npy" in archive.namelist():
                raise ValueError(f"{path} is already a quantized model (QuantizedModel.save): "
                                 "give it to tessera run or tessera compile as it is")
        _, layers = load_float_layers(path)
        if calibration is None:
            raise ValueError(f"{path} holds float layers: quantizing them needs --calibration "
                             "FILE.npy (a representative float batch [M, in_features])")
        return tessera.quantize(list(layers), calibration, **options)
    if path.suffix.lower() not in (".onnx", ".tflite"):
        raise ValueError(f"Cannot quantize {path}: give a .onnx, .tflite or float-layer .npz "
                         "file")
    try:
        return tessera.quantize(str(path), calibration, **options)
    except ValueError as e:
        if "is already quantized" in str(e) and calibration is not None:
            raise ValueError(f"{path} is already quantized: its parameters are kept exactly, "
                             "so give no --calibration") from None
        raise


def run(args) -> int:
    """Run ``tessera quantize``."""
    from .run import load_input
    output = _output_path(args.output)
    calibration = None
    if args.calibration:
        calibration = load_input(args.calibration, raw=False, what="Calibration")
    qmodel = read_model(args.model, calibration, mode=args.mode, bits=args.bits,
                        weight_bits=args.weight_bits, per_channel=args.per_channel,
                        calibration_method=args.calibration_method,
                        percentile=args.percentile)
    qmodel.save(output)
    print(qmodel.summary())
    print(f"Wrote {output}", file=sys.stderr)
    return 0
