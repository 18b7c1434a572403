"""``tessera run``: run a quantized model on a device (emulator, RTL simulation or board).

Models are read by a loader chosen by the file suffix (:data:`LOADERS`); more formats (ONNX,
TFLite) register a loader there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["add_parser", "run", "LOADERS", "load_model", "load_input"]


def _load_npz(path):
    from tessera.numpy_files import check_npz
    from tessera.quantize import QuantizedModel
    return QuantizedModel.load(check_npz(path))


def _load_imported(path, calibration=None, mode=None):
    from tessera.quantize import load_model as import_model
    return import_model(path, calibration, **({"mode": mode} if mode else {}))


#: File suffix -> function(path) returning a :class:`tessera.QuantizedModel`. ``.onnx`` and
#: ``.tflite`` (pre-quantized, or float ONNX with ``--calibration``) go through
#: :func:`tessera.load_model`.
LOADERS = {".npz": _load_npz, ".onnx": _load_imported, ".tflite": _load_imported}


def load_model(path, calibration=None, mode=None):
    """Return the quantized model stored at ``path``, using the loader for its suffix.

    ``calibration`` (a float array) and ``mode`` (``"onnx"``, ``"tflite"`` or None) are passed
    to the ONNX/TFLite loaders; float ONNX models need ``calibration``.
    """
    path = Path(path)
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise ValueError(f"Cannot load a model from {path}: unknown suffix {path.suffix!r}; "
                         f"supported: {', '.join(sorted(LOADERS))} (save a quantized model "
                         f"with QuantizedModel.save)")
    if not path.exists():
        raise FileNotFoundError(f"Model file {path} does not exist")
    if loader is _load_imported:
        return loader(path, calibration, mode)
    if calibration is not None:
        raise ValueError(f"--calibration only applies to float .onnx models, not {path}")
    if mode is not None:
        raise ValueError(f"--mode only applies to .onnx and .tflite files: {path} is quantized "
                         "already, in the mode it was saved with")
    return loader(path)


def load_input(path, *, raw, what="Input"):
    """Return the input batch stored in the ``.npy`` file ``path`` (1-D is one row).

    Raises
    ------
    ValueError
        The file is not a ``.npy`` array of numbers; an integer array without ``raw`` (a
        quantized input needs ``--raw``); a float array with ``raw``.
    """
    import numpy as np

    from tessera.numpy_files import read_npy
    x = read_npy(path, what)
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer)
                               or np.issubdtype(x.dtype, np.floating)):
        kind = {"b": "booleans", "U": "text", "S": "bytes", "O": "Python objects",
                "c": "complex numbers"}.get(x.dtype.kind, "non-numbers")
        raise ValueError(f"{path} holds {kind} (dtype {x.dtype}); give real numbers (float32 "
                         "inputs, or int8/int16 quantized inputs with --raw)")
    if x.ndim == 0 or x.size == 0:
        raise ValueError(f"{path} holds an array of shape {x.shape}; give a batch "
                         "[M, in_features] (or one row [in_features])")
    if x.ndim == 1:
        x = x[None, :]
    if raw and x.dtype not in (np.int8, np.int16):
        raise ValueError(f"--raw needs the quantized input as an integer array (int8 for 4- and "
                         f"8-bit models, int16 for 16-bit ones), but {path} holds {x.dtype}")
    if not raw and x.dtype in (np.int8, np.int16):
        raise ValueError(f"{path} holds {x.dtype} values, which look like an already quantized "
                         "input: add --raw to run it as such (the output is then quantized too), "
                         "or save float values (x.astype('float32')) to have them quantized")
    return x


def add_parser(subparsers):
    p = subparsers.add_parser(
        "run", help="run a quantized model on a device",
        description="Run a model (.npz saved by QuantizedModel.save, .onnx or .tflite) on the "
                    "emulator, the RTL simulation or a board, and print or save the output.")
    p.add_argument("model", metavar="MODEL",
                   help="model file: .npz (QuantizedModel.save), .onnx (float, QDQ or "
                        "QOperator) or .tflite (int8)")
    p.add_argument("--calibration", metavar="FILE",
                   help="float calibration batch (.npy [M, in_features]) to quantize a float "
                        ".onnx model")
    p.add_argument("--mode", choices=("onnx", "tflite"),
                   help="requantization rule of an .onnx/.tflite model (default: onnx, or the "
                        "runtime it was quantized for); CNN graphs run on the device in tflite")
    p.add_argument("--input", required=True, metavar="FILE",
                   help="input batch as a .npy array [M, in_features] (float; int8/int16 only "
                        "with --raw)")
    p.add_argument("--device", default="emu", metavar="TARGET",
                   help="emu, sim, sim:verilator, sim:icarus or serial://PORT?baud=N "
                        "(default: emu)")
    p.add_argument("--config", metavar="FILE", help="AcceleratorConfig JSON (default: 8x8)")
    p.add_argument("--raw", action="store_true",
                   help="int8 input and output (no quantize/dequantize)")
    p.add_argument("--output", metavar="FILE",
                   help="save the output to this .npy file (.npy is appended if missing)")
    p.add_argument("--check", action="store_true",
                   help="also run the NumPy reference and fail unless the outputs are identical")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--waves", metavar="FILE",
                   help="dump a waveform of the RTL simulation to FILE (.fst or .vcd, by the "
                        "suffix; --device sim only)")
    return p


def run(args) -> int:
    import numpy as np

    import tessera

    from .options import load_config, npy_output_path
    # Check every option and file before a device starts.
    config = load_config(args.config)
    output = npy_output_path(args.output) if args.output else None
    calibration = None
    if getattr(args, "calibration", None):
        calibration = load_input(args.calibration, raw=False, what="Calibration")
    qmodel = load_model(args.model, calibration, getattr(args, "mode", None))
    x = load_input(args.input, raw=args.raw)
    options = {}
    if args.waves:
        if not args.device.startswith("sim"):
            raise ValueError(f"--waves needs --device sim (or sim:verilator, sim:icarus): only "
                             f"the RTL simulation has waveforms, not {args.device!r}")
        options["waves"] = args.waves
    with tessera.connect(args.device, config=config, **options) as dev:
        dev.clear_counters()
        y = dev.run(qmodel, x, raw=args.raw)
        counters = dev.counters()
    summary = {"model": str(args.model), "device": args.device, "input_shape": list(x.shape),
               "output_shape": list(y.shape), "output_dtype": str(y.dtype),
               "counters": counters}
    status = 0
    if args.check:
        identical = bool(np.array_equal(y, qmodel.predict(x, raw=args.raw)))
        summary["identical_to_reference"] = identical
        status = 0 if identical else 1
    if output is not None:
        np.save(output, y)
        summary["output"] = str(output)
    if args.waves:
        summary["waves"] = args.waves
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.model} on {args.device}: input {tuple(x.shape)} -> output "
              f"{tuple(y.shape)} {y.dtype}" + (f", saved to {output}" if output else "")
              + (f", waveform in {args.waves}" if args.waves else ""))
        if output is None:
            with np.printoptions(precision=4, suppress=True, threshold=200):
                print(y)
        c = counters
        print(f"cycles {c['cycles']}, compute {c['compute_cycles']}, MACs {c['macs']}, "
              f"stalls {c['stall_cycles']}, utilisation {c['utilisation']:.1%}, "
              f"link {c['rx_bytes']} B in / {c['tx_bytes']} B out")
        if args.check:
            print("identical to the NumPy reference" if status == 0 else
                  "DIFFERENT from the NumPy reference", file=sys.stderr if status else sys.stdout)
    return status
