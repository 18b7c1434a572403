"""Shared helpers of the compiler tests: models, an independent program checker."""

import numpy as np

import tessera
from tessera.spec import isa
from tessera.spec.isa import Buffer


def make_model(rng, sizes, activations, *, mode="onnx", per_channel=True, m_cal=64):
    """Quantize a random float MLP with layer sizes ``sizes`` and the given activations."""
    layers = []
    for k, n, act in zip(sizes, sizes[1:], activations):
        w = rng.normal(0, 1 / np.sqrt(k), (k, n))
        b = rng.normal(0, 0.2, n)
        layers.append((w, b, act))
    x_cal = rng.normal(0, 1, (m_cal, sizes[0]))
    return tessera.quantize(layers, calibration=x_cal, mode=mode, per_channel=per_channel)


def instructions(frames, config):
    """Return ``[(frame, offset, insn), ...]`` of all frames, decoded with the spec decoder."""
    out = []
    for f, payload in enumerate(frames):
        offset = 0
        for insn in isa.decode_program(payload, config):
            out.append((f, offset, insn))
            offset += isa.INSN_BYTES + len(getattr(insn, "payload", b""))
    return out


def hazards(insns, single_port=False):
    """Return the hazards of an instruction stream (conservative contract of docs/isa.md).

    A GEMM is in flight from its issue to the next SYNC or STORE -- frame ends are *not*
    treated as synchronisation. With ``single_port`` (a configuration with ``cnn``) any LOAD
    into ACT or WGT while a GEMM is in flight is one too. Returns ``(index, description)``s.
    """
    found, in_flight, post = [], [], isa.Post()

    def overlap(a0, n0, a1, n1):
        return a0 < a1 + n1 and a1 < a0 + n0

    for i, insn in enumerate(insns):
        if isinstance(insn, (isa.Sync, isa.Store)):
            in_flight = []
        elif isinstance(insn, isa.Load):
            if single_port and in_flight and insn.buffer in (Buffer.ACT, Buffer.WGT):
                found.append((i, f"LOAD {insn.buffer.name} while a GEMM runs (single port)"))
            for g, lut in in_flight:
                reads = {Buffer.ACT: [(g.a_addr, g.k)], Buffer.WGT: [(g.w_addr, g.k)],
                         Buffer.PARAM: [], Buffer.LUT: []}
                if g.drain:
                    reads[Buffer.ACT].append((g.out_addr, g.n_cols))
                    reads[Buffer.PARAM].append((g.param_addr, g.n_cols))
                    if lut:
                        reads[Buffer.LUT].append((0, 256))
                if any(overlap(insn.addr, insn.count, a, n) for a, n in reads[insn.buffer]):
                    found.append((i, f"LOAD {insn.buffer.name} {insn.addr}+{insn.count}"))
        elif isinstance(insn, isa.Gemm):
            for g, _ in in_flight:
                if g.drain and overlap(insn.a_addr, insn.k, g.out_addr, g.n_cols):
                    found.append((i, f"GEMM reads ACT {insn.a_addr}+{insn.k} being drained"))
            in_flight.append((insn, post.lut))
        elif isinstance(insn, isa.Post):
            post = insn
    return found


def check_structure(frames, config, stores=None):
    """Assert the framing and addressing rules every compiled program obeys; return insns."""
    decoded = instructions(frames, config)
    for f, payload in enumerate(frames):
        assert 0 < len(payload) <= config.max_payload, f"frame {f} is {len(payload)} bytes"
    by_frame = {}
    for f, _, insn in decoded:
        by_frame.setdefault(f, []).append(insn)
    for f, insns in by_frame.items():
        for insn in insns[:-1]:
            assert not isinstance(insn, isa.Store), f"STORE not last in frame {f}"
        last = insns[-1]
        if stores is not None:
            assert isinstance(last, isa.Store) == (f in stores), f"frame {f} STORE bookkeeping"
            if f in stores:
                assert stores[f].n_count == last.count
    for f, _, insn in decoded:
        if isinstance(insn, isa.Load):
            assert 1 <= insn.count <= config.max_load_entries(insn.buffer)
            assert insn.addr + insn.count <= config.depth(insn.buffer)
        elif isinstance(insn, isa.Gemm):
            assert 1 <= insn.k and 1 <= insn.m_rows <= config.rows
            assert 1 <= insn.n_cols <= config.cols
            assert insn.a_addr + insn.k <= config.act_depth
            assert insn.w_addr + insn.k <= config.weight_depth
            assert insn.out_addr + insn.n_cols <= config.act_depth
            assert insn.param_addr + insn.n_cols <= config.param_depth
        elif isinstance(insn, isa.Store):
            assert 1 <= insn.count <= config.max_store_entries
            assert insn.addr + insn.count <= config.act_depth
        elif isinstance(insn, isa.Post):
            assert insn.mode.label in config.requant_modes
            assert config.lut or not insn.lut
    return [insn for _, _, insn in decoded]
