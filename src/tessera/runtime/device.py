"""The one host driver for every backend: emulator, RTL simulation and boards.

A :class:`Device` talks only to a :class:`~tessera.runtime.transport.Transport` through a
:class:`~tessera.runtime.link.HostLink`. It identifies the device (``HELLO``), refuses one built
from another configuration, compiles models for it (cached), keeps track of which model's
resident weights are loaded, runs batches and reads the performance counters.

One lock serialises every call that talks to the device (a :meth:`Device.run` holds it for all
of its requests), so threads may share a :class:`Device`; their requests simply take turns.
``Device.link`` is a :class:`DeviceLink`: raw requests through it take the same lock, and any
that may write the device's memories (everything but ``READ``, ``COUNTERS`` and
``CLEAR_COUNTERS``) make the device forget which model is resident, so the next ``run`` loads
it again.
"""

from __future__ import annotations

import numbers
import threading

import numpy as np

from tessera.spec.packing import operand_dtype, unpack_entries
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.protocol import READ_LAYOUT, Kind, decode_counters, decode_id

from .errors import ConfigMismatch, LinkError, TesseraError
from .link import HostLink

__all__ = ["Device", "DeviceLink"]

_CACHE_SIZE = 8

#: Requests that cannot change the device's memories: the resident model survives them.
_READ_ONLY_KINDS = frozenset((Kind.READ, Kind.COUNTERS, Kind.CLEAR_COUNTERS))


class DeviceLink:
    """The :class:`HostLink` of a :class:`Device`, for raw requests.

    :meth:`request` takes the device's lock (so it never interleaves with another thread's
    ``run``) and, unless the request is a ``READ``, ``COUNTERS`` or ``CLEAR_COUNTERS``, makes the
    device forget its resident model first: an ``EXEC`` may overwrite the weights, parameters
    or tables, so the next :meth:`Device.run` sends them again. Every other attribute
    (``stats``, ``timeout_s``, ``retries``, ``transport``, ...) is the underlying link's, to
    read and to set.
    """

    def __init__(self, device, link):
        self._device = device
        self._link = link

    def request(self, kind, payload=b"") -> bytes:
        """Send one request (see :meth:`HostLink.request`) and return its response payload."""
        device = self._device
        with device._lock:
            device._check_open()
            if kind not in _READ_ONLY_KINDS:
                device._resident = None
            return self._link.request(kind, payload)

    def __getattr__(self, name):
        return getattr(self._link, name)

    def __setattr__(self, name, value):   # e.g. link.timeout_s = 5.0 sets the link's
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._link, name, value)

    def __repr__(self):
        return f"<DeviceLink of {self._device!r}>"


class Device:
    """A connected Tessera accelerator (or a model of one).

    Usually made by :func:`tessera.connect`. Use it as a context manager, or call :meth:`close`.

    Parameters
    ----------
    transport : Transport
        The byte pipe to the device.
    config : AcceleratorConfig, optional
        The configuration the host compiles for (default ``AcceleratorConfig()``); the device
        must report the same hash.
    timeout_s : float
        Per-request response timeout.
    retries : int
        Resends per request before :class:`~tessera.runtime.errors.DeviceTimeout`.

    Attributes
    ----------
    config : AcceleratorConfig
    id : dict
        The decoded ``HELLO`` ID record (``isa_version``, ``config_hash``, ``rows``, ...).
    link : DeviceLink
        The request layer, for low-level access (``link.request(kind, payload)``); see
        :class:`DeviceLink` for what a raw request does to the resident model.

    Notes
    -----
    A device may be shared by threads: each call holds the device's lock for all of its
    requests, so concurrent calls take turns and each gets its own, correct result.
    """

    def __init__(self, transport, config=None, *, timeout_s=1.0, retries=5):
        config = config if config is not None else AcceleratorConfig()
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {type(config).__name__}")
        self.config = config
        self.transport = transport
        self._lock = threading.RLock()
        self._link = HostLink(transport, max_payload=config.max_payload, timeout_s=timeout_s,
                              retries=retries)
        self.link = DeviceLink(self, self._link)
        self._compiled = {}     # id(qmodel) -> (qmodel, CompiledModel), most recent last
        self._chains = {}       # id(graph) -> (graph, its dense chain), most recent last
        self._resident = None   # the CompiledModel whose setup frames the device holds
        self._closed = False
        self.id = self._hello()

    # -- identity ------------------------------------------------------------------------------

    def _hello(self) -> dict:
        payload = self._link.request(Kind.HELLO)
        try:
            ident = decode_id(payload)
        except ValueError as e:
            raise LinkError(f"The device's HELLO answer is not a Tessera ID record: {e}") from None
        ident.pop("magic", None)
        cfg = self.config
        if ident["isa_version"] != cfg.isa_version:
            cnn = (f" (the CNN features of configuration field cnn=True: build a CNN "
                   f"preset's bitstream, tessera build --preset NAME, or run on "
                   f"tessera.connect('emu' or 'sim', config=...))"
                   if cfg.isa_version == isa.CNN_ISA_VERSION else "")
            raise ConfigMismatch(
                f"The device implements ISA version {ident['isa_version']} but this host speaks "
                f"version {cfg.isa_version}{cnn}: rebuild the bitstream with this version of "
                f"tessera (tessera build), or install the tessera version the bitstream was "
                f"built with")
        if ident["config_hash"] != cfg.hash:
            raise ConfigMismatch(
                f"The device was built from configuration {ident['config_hash']:016x} "
                f"({ident['rows']}x{ident['cols']}, max_payload {ident['max_payload']}) but the "
                f"host expects {cfg.hash_hex} ({cfg.rows}x{cfg.cols}, max_payload "
                f"{cfg.max_payload}): connect with the configuration the bitstream was built "
                f"from, e.g. tessera.connect(target, config=AcceleratorConfig.load('config.json')),"
                f" or rebuild the bitstream for this configuration")
        self._resident = None
        return ident

    # -- running models ------------------------------------------------------------------------

    def _compile(self, qmodel):
        from tessera.compiler import compile_model
        return _cached(self._compiled, qmodel, lambda m: compile_model(m, self.config))

    def run(self, qmodel, x, *, raw=False):
        """Run ``qmodel`` on the batch ``x`` and return its output.

        The result equals ``qmodel.predict(x, raw=raw)`` bit for bit. The model's activations
        must be ``config.input_bits`` wide and its weights at most ``config.weight_bits`` (quantize
        with ``tessera.quantize(..., bits=config.input_bits)``).

        Parameters
        ----------
        qmodel : tessera.QuantizedModel
        x : numpy.ndarray
            float [M, in_features]; with ``raw=True`` the quantized input [M, in_features]
            (int8 for 4- and 8-bit activations, int16 for 16-bit ones) already quantized with
            the model's input scale and zero point.
        raw : bool
            Return the quantized output (dtype as the raw input) instead of the dequantized
            float32 one.
        """
        with self._lock:
            return self._run(qmodel, x, raw)

    def _run(self, qmodel, x, raw):
        self._check_open()
        if hasattr(qmodel, "graph") and hasattr(qmodel, "first_unsupported"):
            if self.config.cnn and qmodel.first_unsupported(("FULLY_CONNECTED", "LUT")) \
                    is not None:
                return self._run_graph(qmodel, x, raw)
            # The same chain object on every run, so it compiles and loads once.
            qmodel = _cached(self._chains, qmodel, _dense_chain_of)
        for attr in ("layers", "quantize_input", "dequantize_output", "in_features"):
            if not hasattr(qmodel, attr):
                raise TypeError(f"run() needs a tessera.QuantizedModel (from tessera.quantize), "
                                f"not {type(qmodel).__name__}")
        k = qmodel.in_features
        compiled = self._compile(qmodel)   # first: it says when the model's widths do not fit
        if raw:
            x_q = np.asarray(x)
            dtype = operand_dtype(self.config.input_bits)
            if x_q.dtype != dtype or x_q.ndim != 2 or x_q.shape[1] != k:
                raise ValueError(f"With raw=True the input must be an {dtype} array [M, {k}], "
                                 f"not {x_q.dtype} {x_q.shape}; pass float data with raw=False "
                                 f"to quantize it with the model's input scale")
        else:
            x_q = qmodel.quantize_input(x)
        if x_q.shape[0] == 0:   # nothing to send; the same empty result as predict()
            y_q = np.zeros((0, qmodel.out_features), operand_dtype(self.config.input_bits))
            return y_q if raw else qmodel.dequantize_output(y_q)
        if self._resident is not compiled:
            self._resident = None
            try:
                for frame in compiled.setup_frames:
                    self._exec(frame)
            except BaseException:
                self._resident = None
                raise
            self._resident = compiled
        y_q = self.execute(compiled.program(x_q))
        return y_q if raw else qmodel.dequantize_output(y_q)

    def _run_graph(self, qgraph, x, raw):
        """Run a CNN graph resident on a ``cnn`` device (ISA version 3), one sample at a time."""
        from tessera.compiler import compile_graph
        compiled = _cached(self._compiled, qgraph, lambda g: compile_graph(g, self.config))
        # The frames carry NHWC samples; an NCHW source is transposed where predict() does it.
        x_q = qgraph.to_graph_layout(np.asarray(x) if raw else qgraph.quantize_input(x))
        if self._resident is not compiled:
            self._resident = None
            for frame in compiled.setup_frames:
                self._exec(frame)
            self._resident = compiled
        results = []
        try:
            for sample in x_q:      # device and host segments in turn (compiler.graph_segments)
                results.append(compiled.infer(sample, self._exec))
        except BaseException:
            self._resident = None
            raise
        shape = qgraph.graph.tensor(qgraph.graph.outputs[0]).shape
        y_q = qgraph.from_graph_layout(np.stack(results) if results else
                                       np.zeros((0, *shape), np.int8))
        return y_q if raw else qgraph.dequantize_output(y_q)

    def execute(self, program) -> np.ndarray:
        """Send the frames of a compiled :class:`~tessera.compiler.Program`; return its output.

        Either the whole output is returned or an exception is raised; never a partial result.
        """
        from tessera.compiler import assemble_outputs
        with self._lock:
            self._check_open()
            responses = self._send_program(program)
        return assemble_outputs(program, responses)

    def _send_program(self, program) -> dict:
        responses = {}
        try:
            for index, frame in enumerate(program.frames):
                data = self._exec(frame)
                if index in program.stores:
                    responses[index] = data
                elif data:
                    raise LinkError(f"Frame {index} has no STORE but the device answered with "
                                    f"{len(data)} bytes: the device and host disagree on the "
                                    f"protocol")
        except BaseException:
            self._resident = None   # the device may hold a half-loaded state now
            raise
        return responses

    def _exec(self, frame) -> bytes:
        return self._link.request(Kind.EXEC, frame)

    def read(self, addr: int, count: int) -> np.ndarray:
        """Return activation-buffer entries ``addr .. addr+count-1`` as operands [count, rows].

        int8 for 4- and 8-bit activations, int16 for 16-bit ones (see
        :func:`tessera.spec.pack_operands`).

        Raises
        ------
        ValueError
            ``addr`` or ``count`` is not an integer, or the range is not inside the activation
            buffer (``act_depth`` entries), or ``count`` entries do not fit one response
            (``config.max_store_entries``); checked before anything is sent.
        """
        addr, count = self._check_read_range(addr, count)
        with self._lock:
            self._check_open()
            data = self._link.request(Kind.READ, READ_LAYOUT.to_bytes(addr=addr, count=count))
        if len(data) != count * self.config.act_entry_bytes:
            raise LinkError(f"READ of {count} entries returned {len(data)} bytes, expected "
                            f"{count * self.config.act_entry_bytes}")
        return unpack_entries(data, count, self.config.rows, self.config.input_bits)

    def _check_read_range(self, addr, count):
        depth, most = self.config.act_depth, self.config.max_store_entries
        for name, value in (("addr", addr), ("count", count)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                raise ValueError(f"read() {name} must be an integer, not {value!r}")
        addr, count = int(addr), int(count)
        if not 0 <= addr < depth:
            raise ValueError(f"read() addr must be an entry of the activation buffer, 0 to "
                             f"{depth - 1}, not {addr}")
        if not 1 <= count <= min(most, depth - addr):
            raise ValueError(f"read() count must be from 1 to {min(most, depth - addr)} at addr "
                             f"{addr} (the activation buffer has {depth} entries and one READ "
                             f"returns at most {most}), not {count}; read in several calls")
        return addr, count

    # -- counters ------------------------------------------------------------------------------

    def counters(self) -> dict:
        """Return the performance counters, plus ``utilisation`` (MACs / peak MACs of the
        compute cycles; 0.0 before any GEMM)."""
        with self._lock:
            self._check_open()
            values = decode_counters(self._link.request(Kind.COUNTERS))
        peak = self.config.peak_macs_per_cycle * values["compute_cycles"]
        values["utilisation"] = values["macs"] / peak if peak else 0.0
        return values

    def clear_counters(self):
        """Zero the device's performance counters."""
        with self._lock:
            self._check_open()
            self._link.request(Kind.CLEAR_COUNTERS)

    # -- lifetime ------------------------------------------------------------------------------

    def _check_open(self):
        if self._closed:
            raise TesseraError("This device is closed; connect again with tessera.connect()")

    def close(self):
        """Release the transport (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._closed else "open"
        return (f"<Device {self.config.rows}x{self.config.cols} config {self.config.hash_hex} "
                f"over {type(self.transport).__name__}, {state}>")


def _cached(cache, obj, make):
    """Return ``make(obj)``, kept in ``cache`` (the last :data:`_CACHE_SIZE` objects used).

    Entries hold ``obj`` itself, so its ``id`` cannot be reused while it is cached.
    """
    entry = cache.pop(id(obj), None)
    if entry is None:
        entry = (obj, make(obj))
    cache[id(obj)] = entry        # most recently used last
    while len(cache) > _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    return entry[1]


def _dense_chain_of(qgraph):
    """Return the dense chain of a graph the device can run, or refuse naming the operation."""
    from tessera.quantize.errors import UnsupportedModelError
    index = qgraph.first_unsupported(("FULLY_CONNECTED", "LUT"))
    if index is not None:
        raise UnsupportedModelError(
            f"The device cannot run {qgraph.graph.describe(index)} of graph "
            f"{qgraph.graph.name!r} yet: the accelerator executes chains of FULLY_CONNECTED "
            "layers with clamp or table activations (convolutions on the device are issue #9); "
            "run the model on the host with model.predict(x)")
    return qgraph.to_dense_chain()
