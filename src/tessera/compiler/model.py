"""``compile_model``: a quantized model becomes Tessera programs for one configuration.

:class:`CompiledModel` holds the setup frames (resident weights, parameters, lookup table) and
builds the per-batch :class:`~tessera.compiler.program.Program` for any batch size: batches are
cut into chunks of ``tiles_per_chunk * rows`` rows, each chunk's schedule is generated once per
shape (:mod:`.codegen`, :mod:`.hazards`, :mod:`.framing`) and the input bytes are filled in.
"""

from __future__ import annotations

import numpy as np

from ..spec import AcceleratorConfig
from ..spec.protocol import FRAME_OVERHEAD
from ..spec.packing import check_operand_block, operand_dtype
from .alloc import allocate
from .codegen import WeightTiles, chunk_ops, pack_input, setup_ops
from .framing import frame_ops
from .hazards import insert_syncs
from .lowering import check_supported, check_widths, hardware_layer, lower_model
from .program import Program, StoreTarget

__all__ = ["CompiledModel", "compile_model", "compile_gemm"]


class CompiledModel:
    """A model compiled for one :class:`~tessera.spec.AcceleratorConfig`.

    Attributes
    ----------
    config : AcceleratorConfig
    qmodel : QuantizedModel or None
        The source model (None for :func:`compile_gemm`).
    layers : list of HardwareLayer
        What the hardware computes per layer (folded bias, requant parameters, post state).
    allocation : Allocation
        Buffer allocation (see :mod:`tessera.compiler.alloc`).
    setup_frames : list of bytes
        EXEC payloads loading everything resident; send once before the first program (and
        again after running another model on the device). May be empty.
    """

    def __init__(self, layers, config, qmodel=None):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {type(config).__name__}")
        check_supported(layers, config)
        self.config, self.qmodel, self.layers = config, qmodel, list(layers)
        self.allocation = allocate(self.layers, config)
        self._weights = WeightTiles(self.layers, self.allocation, config)
        ops = setup_ops(self.layers, self.allocation, self._weights)
        self._setup = frame_ops(ops, config)
        self.setup_frames = self._setup.render()
        self._templates = {}
        # The schedule of a full chunk is built now (so compile_model surfaces every problem);
        # schedules of shorter final chunks are built on first use and cached.
        self._template(self.allocation.tiles_per_chunk, config.rows)

    # -- shape and resources ---------------------------------------------------------------

    @property
    def in_features(self) -> int:
        """Inputs K of the first layer."""
        return self.layers[0].k

    @property
    def out_features(self) -> int:
        """Outputs N of the last layer."""
        return self.layers[-1].n

    @property
    def weights_resident(self) -> bool:
        """Whether all weights are loaded once by :attr:`setup_frames` (else some or all are
        streamed per chunk: :attr:`streamed_weight_entries`)."""
        return self.allocation.weights_resident

    @property
    def streamed_weight_entries(self) -> int:
        """``WGT`` entries a full chunk streams (0 when every weight is resident)."""
        tiles = self.allocation.tiles_per_chunk
        total = 0
        for la in self.allocation.layers:
            entries = la.k * (len(la.n_tiles) - la.weights.resident_tiles)
            total += entries * (tiles if la.weights.strategy == "split" else 1)
        return total

    @property
    def rows_per_chunk(self) -> int:
        """Batch rows that run through all layers on chip at once."""
        return self.allocation.tiles_per_chunk * self.config.rows

    @property
    def macs_per_row(self) -> int:
        """Useful MACs per batch row (one inference): ``sum K_i * N_i``."""
        return sum(layer.k * layer.n for layer in self.layers)

    @property
    def buffer_usage(self) -> dict:
        """Entries used of each on-chip buffer: ``{name: {"used", "depth", "use"}}``."""
        return self.allocation.usage

    def link_bytes(self, m: int) -> dict:
        """Return the bytes a batch of ``m`` rows moves over the link (frames included).

        Returns ``{"request": ..., "response": ..., "total": ..., "frames": ...}``; the setup
        frames are not included (see :attr:`setup_bytes`).
        """
        request = response = frames = 0
        for template, count in self._chunks(m):
            sizes = template.frame_bytes
            frames += count * len(sizes)
            request += count * (sum(sizes) + FRAME_OVERHEAD * len(sizes))
            store_bytes = (sum(t.n_count for t in template.stores.values())
                           * self.config.act_entry_bytes)
            response += count * (store_bytes + FRAME_OVERHEAD * len(sizes))
        return {"request": request, "response": response, "total": request + response,
                "frames": frames}

    @property
    def setup_bytes(self) -> int:
        """Bytes of the setup frames on the link (request frames and empty responses)."""
        return sum(len(f) + 2 * FRAME_OVERHEAD for f in self.setup_frames)

    @property
    def bytes_per_inference(self) -> float:
        """Link bytes per batch row when batches fill whole chunks (setup excluded)."""
        m = self.rows_per_chunk
        return self.link_bytes(m)["total"] / m

    def instruction_count(self, m: int) -> int:
        """Return the instructions of the program of a batch of ``m`` rows."""
        return sum(t.n_instructions * count for t, count in self._chunks(m))

    def report(self) -> dict:
        """Return a JSON-compatible summary of resources and costs."""
        m = self.rows_per_chunk
        return {
            "config_hash": self.config.hash_hex,
            "layers": [{"name": l.name, "k": l.k, "n": l.n, "mode": l.mode,
                        "weights": a.weights.strategy, "k_parts": len(a.weights.k_parts),
                        "resident_tiles": a.weights.resident_tiles,
                        "column_tiles": len(a.n_tiles),
                        "lut": l.lut is not None}
                       for l, a in zip(self.layers, self.allocation.layers)],
            "weights_resident": self.weights_resident,
            "streamed_weight_entries": self.streamed_weight_entries,
            "params_resident": self.allocation.params_resident,
            "buffers": self.buffer_usage,
            "rows_per_chunk": m,
            "macs_per_row": self.macs_per_row,
            "instructions_per_chunk": self.instruction_count(m),
            "setup_frames": len(self.setup_frames),
            "setup_bytes": self.setup_bytes,
            "link_bytes_per_chunk": self.link_bytes(m),
            "bytes_per_inference": self.bytes_per_inference,
        }

    def summary(self) -> str:
        """Return a text table of the allocation and costs."""
        r = self.report()
        weights = self._weights_word()
        if weights == "partly resident":
            weights += f" ({r['streamed_weight_entries']} entries streamed per chunk)"
        lines = [f"Compiled for {self.config.rows}x{self.config.cols} "
                 f"(config {r['config_hash']}): {r['rows_per_chunk']} rows per chunk, "
                 f"weights {weights}"]
        lines.append(f"{'layer':<16}{'K':>7}{'N':>7}  weights")
        for l in r["layers"]:
            parts = f", K in {l['k_parts']} parts" if l["k_parts"] > 1 else ""
            tiles, kept = l["column_tiles"], l["resident_tiles"]
            if l["weights"] != "resident" and kept:
                parts += f", {tiles - kept} of {tiles} column tiles streamed"
            lines.append(f"{l['name']:<16}{l['k']:>7}{l['n']:>7}  {l['weights']}{parts}")
        lines.append(f"{'buffer':<8}{'used':>8}{'depth':>8}  use")
        for name, u in r["buffers"].items():
            lines.append(f"{name:<8}{u['used']:>8}{u['depth']:>8}  {u['use']}")
        lines.append(f"MACs per inference {r['macs_per_row']}, link bytes per inference "
                     f"{r['bytes_per_inference']:.1f}, setup {r['setup_bytes']} bytes")
        return "\n".join(lines)

    # -- programs ----------------------------------------------------------------------------

    def _template(self, tiles, last_rows):
        key = (tiles, last_rows)
        template = self._templates.get(key)
        if template is None:
            ops = chunk_ops(self.layers, self.allocation, self._weights, self.config, tiles,
                            last_rows)
            ops = insert_syncs(ops, self.allocation.depth, single_port=self.config.cnn)
            template = self._templates[key] = frame_ops(ops, self.config)
        return template

    def _chunk_shapes(self, m):
        rows, per_chunk = self.config.rows, self.rows_per_chunk
        for m0 in range(0, m, per_chunk):
            m_chunk = min(per_chunk, m - m0)
            tiles = -(-m_chunk // rows)
            yield m0, m_chunk, tiles, m_chunk - (tiles - 1) * rows

    def _chunks(self, m):
        counts = {}
        for _, _, tiles, last in self._chunk_shapes(m):
            counts[(tiles, last)] = counts.get((tiles, last), 0) + 1
        return [(self._template(*key), count) for key, count in counts.items()]

    def program(self, x_q) -> Program:
        """Return the per-batch :class:`Program` for the input ``x_q [M, K]`` (any M >= 1).

        ``x_q`` holds ``config.input_bits``-wide operands: int8 up to 8 bits, int16 for 16.

        Raises
        ------
        ValueError
            ``x_q`` is not a non-empty ``[M, K]`` array of that dtype with the model's K, or
            holds a value outside the input width.
        """
        x_q = np.asarray(x_q)
        k = self.in_features
        bits = self.config.input_bits
        dtype = operand_dtype(bits)
        if x_q.dtype != dtype or x_q.ndim != 2 or x_q.shape[1] != k or x_q.shape[0] < 1:
            raise ValueError(f"Program input must be a non-empty {dtype} array [M, {k}], not "
                             f"{x_q.dtype} {x_q.shape}; quantize float data with "
                             f"qmodel.quantize_input(x)")
        check_operand_block("Program input", x_q, bits)
        m = x_q.shape[0]
        frames, stores, n_insns = [], {}, 0
        for m0, m_chunk, tiles, last in self._chunk_shapes(m):
            template = self._template(tiles, last)
            x_bytes = pack_input(x_q[m0:m0 + m_chunk], tiles, self.config.rows, bits)
            base = len(frames)
            frames += template.render(x_bytes)
            for index, t in template.stores.items():
                stores[base + index] = StoreTarget(m0 + t.m_start, t.m_rows, t.n_start,
                                                   t.n_count)
            n_insns += template.n_instructions
        return Program(frames=frames, stores=stores, out_shape=(m, self.out_features),
                       macs=m * self.macs_per_row, rows=self.config.rows,
                       n_instructions=n_insns, bits=self.config.output_bits)

    def reference(self, x_q) -> np.ndarray:
        """Return the output the hardware must produce, from the lowered layers.

        Computed with :mod:`tessera.numerics` exactly as docs/isa.md defines a drain
        (``wrap(acc + bias)`` at ``acc_bits``, requant, zero point, clamp, LUT), independently of
        the schedule; equal to ``qmodel.predict(x_q, raw=True)`` for compiled quantized models.
        """
        y = np.asarray(x_q)
        for layer in self.layers:
            y = layer.forward(y)
        return y

    def _weights_word(self):
        if self.weights_resident:
            return "resident"
        kept = any(la.weights.resident_tiles for la in self.allocation.layers)
        return "partly resident" if kept else "streamed"

    def __repr__(self):
        return (f"<CompiledModel {self.in_features} -> {self.out_features} for "
                f"{self.config.rows}x{self.config.cols}, weights {self._weights_word()}>")


def compile_model(qmodel, config) -> CompiledModel:
    """Compile a :class:`~tessera.quantize.QuantizedModel` for ``config``.

    Raises
    ------
    OverflowError
        A layer's ``acc_bits`` accumulator could overflow (the message names the layer, K and
        the fix).
    ValueError
        The model's operand widths differ from the configuration's (activations must be
        ``input_bits`` wide, weights at most ``weight_bits``), the model needs a feature the
        configuration lacks (``requant_modes``, ``lut``), or a layer cannot run even one row
        tile (the message names ``act_depth``).
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {type(config).__name__}")
    layers = getattr(qmodel, "layers", None)
    if layers:
        check_widths(layers, config)   # before lowering: a width mismatch is the real error
    return CompiledModel(lower_model(qmodel, acc_bits=config.acc_bits), config, qmodel=qmodel)


def compile_gemm(weight, bias, multiplier, shift, config, *, mode="onnx", zero_point=0,
                 lo=None, hi=None, lut=None, name="gemm") -> CompiledModel:
    """Compile one bare GEMM layer from raw hardware values (benchmarks, RTL tests).

    ``y = post(wrap(x @ weight + bias))`` exactly as a drain computes it (docs/isa.md); no
    input zero point is folded. Use :meth:`CompiledModel.reference` as the expected output.
    The operand and accumulator widths are the configuration's; ``lo``/``hi`` default to the
    ends of the ``config.output_bits`` range.

    Parameters
    ----------
    weight : [K, N] of ``config.weight_bits`` operands (int8 up to 8 bits, int16 for 16)
    bias : int32 [N]
    multiplier, shift : [N] or scalar
        Hardware requant encoding (:func:`tessera.numerics.requant_multipliers`).
    config : AcceleratorConfig
    mode, zero_point, lo, hi, lut, name
        Post state and layer name (see :func:`tessera.compiler.lowering.hardware_layer`).
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {type(config).__name__}")
    layer = hardware_layer(weight, bias, multiplier, shift, mode=mode, zero_point=zero_point,
                           lo=lo, hi=hi, lut=lut, name=name, input_bits=config.input_bits,
                           weight_bits=config.weight_bits, acc_bits=config.acc_bits)
    return CompiledModel([layer], config)
