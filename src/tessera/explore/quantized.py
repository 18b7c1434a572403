"""Sweeps of models that are already quantized, and of CNNs on the boards' CNN presets.

An int8 ``.tflite`` file (the MLPerf Tiny models), a quantized ``.onnx`` file (ONNX Runtime
QDQ/QOperator, QONNX) or a saved ``.npz`` :class:`~tessera.quantize.QuantizedModel` keeps its
parameters exactly, so its operand width and requantization mode cannot change: the sweep
varies what can (boards, array shapes) at the model's own width. A float CNN (an ``.onnx`` file
that is not a dense chain) is quantized once for the CNN presets, int8 mode ``tflite``
(:func:`quantize_float_graph`), and swept the same way.

A model that is not a dense chain (a :class:`~tessera.graph.QuantizedGraph` with convolutions,
pools, ADDs, ...) runs on configurations with the CNN features: each point is the board's CNN
preset with the point's array shape (:func:`tessera.explore.grid.cnn_config`). :func:`graph_figures` compiles the model resident for it
(:func:`tessera.compiler.compile_graph`; a configuration whose memories cannot hold it is
"does not fit", with the compiler's message naming the bytes) and measures one inference with
its input already on the device on the emulator's cycle model (:class:`tessera.runtime.Emulator`,
the frames fed as ``tessera profile`` feeds them: MLPerf Tiny's latency); with data
it also runs every test row through ``tessera.connect("emu", config=...)`` and checks the
outputs against the NumPy reference bit for bit.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["is_quantized_file", "load_quantized_workload", "quantized_workload",
           "quantize_float_graph", "is_graph", "fixed_bits", "graph_figures"]


def is_quantized_file(model) -> bool:
    """Return whether the file ``model`` holds a quantized model (False if it is no file)."""
    path = Path(model)
    if not path.is_file():
        return False
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return True
    if suffix == ".npz":
        try:
            with zipfile.ZipFile(path) as archive:
                return "meta.npy" in archive.namelist()
        except zipfile.BadZipFile:
            return False
    if suffix == ".onnx":
        from tessera.quantize.onnx_graph import OnnxChain, load_onnx
        from tessera.quantize.onnx_quantized import is_quantized_onnx
        from tessera.quantize.qonnx_import import is_qonnx_model
        chain = OnnxChain(*load_onnx(path))
        return bool(is_qonnx_model(chain.model) or is_quantized_onnx(chain))
    return False


def is_graph(model) -> bool:
    """Return whether ``model`` needs the CNN features (a graph that is not a dense chain)."""
    return hasattr(model, "graph")


def fixed_bits(model) -> int:
    """Return the operand width of a quantized model (activations; weights are as wide)."""
    return int(model.input_bits)


def _read(path, mode):
    import tessera
    suffix = path.suffix.lower()
    if suffix == ".npz":
        model = tessera.load_model(path)
        if mode is not None and mode != model.mode:
            raise ValueError(f"{path} is saved in requant mode {model.mode!r}, not {mode!r}; "
                             f"drop --mode or give --mode {model.mode}")
        return model
    if suffix == ".tflite":
        return tessera.load_model(path, mode=mode or "tflite")
    return tessera.load_model(path, mode=mode)


def _raw_inputs(model, x, path):
    """Return ``x`` as the model's raw (quantized) input: integers as given, floats quantized."""
    shape = tuple(model.input_shape) if is_graph(model) else (model.in_features,)
    if x.shape[1:] != shape:
        raise ValueError(f"--data {path} is {x.shape} but the model takes rows of shape "
                         f"{shape}: give [rows, {', '.join(map(str, shape))}]")
    if np.issubdtype(x.dtype, np.integer):
        dtype = np.dtype(model.input_tensor.dtype) if is_graph(model) else \
            model.quantize_input(np.zeros((1,) + shape, np.float32)).dtype
        lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
        if x.min() < lo or x.max() > hi:
            raise ValueError(f"--data {path} holds integers from {x.min()} to {x.max()}, but the "
                             f"model's quantized input is {dtype} [{lo}, {hi}]; give those "
                             "or float inputs (quantized with the model's input scale)")
        return x.astype(dtype)
    return model.quantize_input(np.asarray(x, np.float32))


def load_quantized_workload(model, data=None, labels=None, *, mode=None):
    """Return the :class:`~tessera.explore.sources.Workload` of a quantized model file.

    ``data`` (``.npy`` inputs, or an ``.npz`` whose ``x_test``/``y_test`` are used) is
    optional; integer inputs are taken as the quantized input, float ones are quantized with
    the model's input scale and zero point.
    """
    from .sources import load_data
    path = Path(model)
    qmodel = _read(path, mode)
    x = y = None
    if data is not None:
        _, x, y = load_data(data, labels)
    elif labels is not None:
        raise ValueError("--labels needs --data (the inputs they label)")
    digest = hashlib.sha256(path.read_bytes() + f"|{qmodel.mode}".encode()).hexdigest()
    return quantized_workload(qmodel, path.name, digest, x, y, data)


def quantized_workload(qmodel, name, model_hash, x, y, data="--data"):
    """Return the :class:`~tessera.explore.sources.Workload` of ``qmodel`` on rows ``x``.

    ``x`` (or ``None``) is raw or float (see :func:`load_quantized_workload`), ``y`` its labels
    or ``None``; ``data`` names where they came from, for error messages.
    """
    from .sources import Workload, array_digest, check_labels, data_arrays
    x_q = None if x is None else _raw_inputs(qmodel, np.asarray(x), data)
    if y is not None:
        y = y.astype(np.int64)
        outputs = int(np.prod(qmodel.output_shape)) if is_graph(qmodel) else qmodel.out_features
        check_labels(y, outputs)
    kind = "graph" if is_graph(qmodel) else "dense chain"
    name = f"{name} (quantized {kind}, int{fixed_bits(qmodel)}, mode {qmodel.mode})"
    return Workload(name=name, layers=(), x_calibration=None, x_test=x_q, y_test=y,
                    model_hash=model_hash, data_hash=array_digest(*data_arrays(x_q, y)),
                    quantized=qmodel)


def quantize_float_graph(path, x_train, x_test, y_test, data_hash):
    """Return the workload of a float CNN file: quantized once, int8 mode ``tflite``.

    The boards' CNN presets build mode ``tflite`` with 8-bit operands only, so the graph is
    quantized for them (calibrated on ``x_train``) and swept like a quantized model.
    """
    import tessera
    qmodel = tessera.quantize(str(path), calibration=x_train, mode="tflite")
    digest = hashlib.sha256(Path(path).read_bytes() + f"|tflite|{data_hash}".encode()).hexdigest()
    return quantized_workload(qmodel, f"{Path(path).name} quantized on the data", digest, x_test,
                              y_test)


def _accuracy(out, y):
    if y is None:
        return None
    return float((np.argmax(out.reshape(len(out), -1), axis=1) == y).mean())


def graph_figures(qgraph, config, x_q, y):
    """Return the emulator figures of ``qgraph`` resident on ``config`` (CNN features).

    Returns ``{"fits": False, "reason": ...}`` when the configuration's memories cannot hold
    the model; otherwise ``fits`` True, the one-inference cycles (input already on the device),
    the setup cycles (weights and parameters loaded once), MACs, utilisation, the counters, the
    memory plan, and with data the accuracy and whether the device equals the reference.
    """
    import tessera
    from tessera.compiler import ModelTooLarge, compile_graph
    from tessera.runtime import Emulator
    try:
        compiled = compile_graph(qgraph, config)
    except ModelTooLarge as e:
        return {"fits": False, "reason": str(e)}
    if compiled.why_not_resident():        # weights streamed or host operations between
        return {"fits": False, "reason": compiled.why_not_resident()}
    sample = x_q[0] if x_q is not None and len(x_q) else \
        np.full(qgraph.input_shape, qgraph.input_zero_point, np.dtype(qgraph.input_tensor.dtype))
    emulator = Emulator(config)
    sequence = _send(emulator, compiled.setup_frames, 0)
    setup = emulator.cycles.counters()["cycles"]
    sequence = _send(emulator, compiled.input_frames(sample), sequence)
    before = emulator.cycles.counters()
    _send(emulator, compiled.frames, sequence)
    after = emulator.cycles.counters()
    counters = {k: int(after[k] - before[k]) for k in after if k != "utilisation"}
    peak = config.rows * config.cols
    figures = {"fits": True, "accuracy": None, "outputs_identical": None}
    if x_q is not None:
        with tessera.connect("emu", config=config) as dev:
            out = dev.run(qgraph, x_q, raw=True)
        figures.update(accuracy=_accuracy(out, y),
                       outputs_identical=bool(np.array_equal(out, qgraph.predict(x_q, raw=True))))
    cycles = counters["cycles"]
    return {**figures, "cycles_per_inference": float(cycles), "latency_cycles": cycles,
            "setup_cycles": int(setup),
            "utilisation": counters["macs"] / (peak * cycles) if cycles else 0.0,
            "macs_per_inference": float(counters["macs"]), "counters": counters,
            "memory": compiled.plan.usage(config)}


def _send(emulator, frames, sequence):
    """Feed EXEC ``frames`` to ``emulator`` (answers read and dropped); return the next seq."""
    from tessera.spec.protocol import Kind, encode_frame
    for frame in frames:
        emulator.feed(encode_frame(Kind.EXEC, sequence & 0xFF, frame))
        emulator.read(1 << 24)
        sequence += 1
    return sequence
