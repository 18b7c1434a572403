"""Random and mutated host-link traffic for the RTL fuzz test (``sim/system_fuzz.py``).

:class:`FrameFuzzer` draws one :class:`Stimulus` at a time from a seeded ``random.Random``:

- **valid** requests: random programs (``LOAD`` into every buffer, ``POST``, ``GEMM`` with and
  without drain, ``NOP``, ``SYNC``, a final ``STORE``; ranges often placed to end exactly at a
  buffer's depth; with ``config.cnn`` also ``WINDOW`` + ``CONV`` of every kind and ``ADD``),
  ``HELLO``, ``READ``, ``COUNTERS``, ``CLEAR_COUNTERS``, a repeated ``EXEC``;
- **mutated programs** (docs/isa.md's checks): a field set at or past its limit, a flipped bit,
  an unknown opcode, padding bits set, a truncated program or ``LOAD`` payload, a ``STORE`` not
  last or too large, random instruction bytes;
- **link faults** (docs/protocol.md): a bad payload or header CRC, a damaged header byte, a
  wrong length (CRC-8 recomputed, or past ``max_payload``), unknown kinds, payloads on kinds that
  take none, ``READ`` fields at their limits, line noise (with ``SYNC`` bytes and fake headers)
  before a frame, a frame cut by the receive timeout.

A stimulus is one or more byte strings: between two of them the sender is silent until the
receive timeout expires. The generator knows nothing of the simulator; the test feeds the same
bytes to the emulator, which says what the RTL must answer.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import NamedTuple

from tessera.spec import isa, operand_range
from tessera.spec.isa import Buffer, CnnOpcode, ConvKind, Opcode
from tessera.spec.protocol import READ_LAYOUT, SYNC, Kind, crc8, encode_frame

__all__ = ["Stimulus", "FrameFuzzer", "PROGRAM_MUTATIONS", "LINK_FAULTS", "VALID_KINDS",
           "run_fuzz"]


class Stimulus(NamedTuple):
    """What to send: ``parts`` with a receive timeout between them; ``bad``: not a valid request
    (a good request must follow it)."""

    name: str
    parts: tuple
    bad: bool


VALID_KINDS = ("program", "hello", "read", "counters", "clear_counters", "repeat_exec")
PROGRAM_MUTATIONS = ("field_limit", "bit_flip", "bad_opcode", "pad_bits", "truncate",
                     "load_short", "store_not_last", "store_too_large", "random_insn")
LINK_FAULTS = ("payload_crc", "header_crc", "header_byte", "length", "oversized", "bad_kind",
               "payload_on_empty_kind", "read_length", "read_limits", "noise",
               "timeout_mid_frame")


class FrameFuzzer:
    """Seeded generator of requests, mutated programs and link faults for one configuration.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig
    rng : random.Random
    """

    def __init__(self, config, rng: random.Random):
        self.config = config
        self.rng = rng
        self._last_exec = None          # the last EXEC frame generated (for repeat_exec)
        cfg = config
        self._out_lo, self._out_hi = operand_range(cfg.output_bits)
        depths = {cfg.act_depth, cfg.weight_depth, cfg.param_depth, 256, cfg.max_payload}
        edges = {0, 1, 2, cfg.rows, cfg.cols, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF}
        for d in depths | {cfg.rows, cfg.cols}:
            edges |= {d - 1, d, d + 1}
        #: Values tried for a field (masked to its width): limits, their neighbours, extremes.
        self.edges = sorted(v for v in edges if v >= 0)
        #: The instruction layouts of the configuration's ISA version.
        self.layouts = isa.ALL_LAYOUTS if cfg.cnn else isa.LAYOUTS

    # -- top level ---------------------------------------------------------------------------

    def next(self) -> Stimulus:
        """Return the next stimulus: about 30 % valid (with ``config.cnn`` half of them
        programs), 35 % mutated programs, 35 % link faults."""
        r = self.rng.random()
        if r < 0.3:
            if self.config.cnn:   # more programs: each brings WINDOW, CONV and ADD to run
                name = self.rng.choices(VALID_KINDS, (4,) + (1,) * (len(VALID_KINDS) - 1))[0]
            else:
                name = self.rng.choice(VALID_KINDS)
            return Stimulus(name, (self.valid_request(name),), False)
        if r < 0.65:
            name = self.rng.choice(PROGRAM_MUTATIONS)
            frame = self._exec(self.mutated_program(name))
            return Stimulus(name, (frame,), True)
        name = self.rng.choice(LINK_FAULTS)
        return Stimulus(name, self.link_fault(name), True)

    def seq(self) -> int:
        return self.rng.randrange(256)

    def _exec(self, program) -> bytes:
        frame = encode_frame(Kind.EXEC, self.seq(), program)
        self._last_exec = frame
        return frame

    def valid_request(self, name) -> bytes:
        """Return one well-formed request frame of the kind ``name`` (in :data:`VALID_KINDS`)."""
        if name == "program":
            return self._exec(self.program())
        if name == "repeat_exec" and self._last_exec is not None:
            return self._last_exec
        if name == "read":
            count = self.rng.randint(1, self.config.max_payload // self.config.act_entry_bytes)
            addr = self._place(count, self.config.act_depth)
            return encode_frame(Kind.READ, self.seq(), READ_LAYOUT.to_bytes(addr=addr,
                                                                           count=count))
        kind = {"hello": Kind.HELLO, "counters": Kind.COUNTERS,
                "clear_counters": Kind.CLEAR_COUNTERS}.get(name, Kind.HELLO)
        return encode_frame(kind, self.seq())

    def good_exec(self, avoid_seq):
        """Return ``(frame, data)``: LOAD random activations and STORE them back, with a ``seq``
        other than ``avoid_seq`` (the last EXEC's, which would only be answered again)."""
        cfg = self.config
        count = self.rng.randint(1, (cfg.max_payload - 2 * isa.INSN_BYTES) // cfg.act_entry_bytes)
        addr = self._place(count, cfg.act_depth)
        data = self._bytes(count * cfg.act_entry_bytes)
        # The STORE sends back what the device holds: padding bits of 4-bit rows read as zero.
        program = isa.Load(Buffer.ACT, addr, count, data).encode() + isa.Store(addr, count).encode()
        seq = self.rng.choice([s for s in range(256) if s != avoid_seq])
        return encode_frame(Kind.EXEC, seq, program), (addr, count, data)

    # -- valid programs ----------------------------------------------------------------------

    def program(self) -> bytes:
        """Return a random program within ``max_payload`` (it may still race: the test asks the
        emulator, which refuses undefined programs)."""
        return b"".join(a + b for a, b in self._instructions())

    def _instructions(self) -> list:
        """Return ``[(instruction, payload), ...]`` of a random program."""
        rng, cfg = self.rng, self.config
        budget = cfg.max_payload - isa.INSN_BYTES      # room for a final STORE
        out, mode = [], None
        if rng.random() < 0.7:
            post, mode = self._post()
            out.append((post, b""))
        kinds, weights = ("load", "gemm", "nop", "sync", "post"), (4, 4, 1, 1, 1)
        if cfg.cnn:
            kinds, weights = kinds + ("conv", "add"), weights + (4, 2)
        for _ in range(rng.randint(1, 6)):
            what = rng.choices(kinds, weights)[0]
            used = sum(len(a) + len(b) for a, b in out)
            room = budget - used - isa.INSN_BYTES
            if room < isa.INSN_BYTES:
                break
            if what == "load":
                out.append(self._load(room, mode))
            elif what == "gemm":
                out.append((self._gemm(), b""))
                if rng.random() < 0.8 and room >= 2 * isa.INSN_BYTES:
                    out.append((isa.Sync().encode(), b""))
            elif what == "post":
                post, mode = self._post()
                out.append((post, b""))
            elif what in ("conv", "add"):
                words = self._conv() if what == "conv" else [self._add()]
                if rng.random() < 0.8:
                    words.append(isa.Sync().encode())
                if room >= len(words) * isa.INSN_BYTES:
                    out += [(word, b"") for word in words]
            else:
                out.append(((isa.Nop() if what == "nop" else isa.Sync()).encode(), b""))
        if rng.random() < 0.6:
            count = rng.randint(1, cfg.max_payload // cfg.act_entry_bytes)
            store = isa.LAYOUTS[Opcode.STORE].to_bytes(
                opcode=int(Opcode.STORE), addr=self._place(count, cfg.act_depth), count=count)
            out.append((store, b""))
        return out

    def _place(self, count, depth) -> int:
        """Return a start address for ``count`` entries: often the last that fits."""
        last = max(0, depth - count)
        return last if self.rng.random() < 0.3 else self.rng.randint(0, last)

    def _bytes(self, n) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def _post(self):
        rng, cfg = self.rng, self.config
        mode = rng.choice(cfg.requant_modes)
        lo, hi = sorted(rng.choice((self._out_lo, self._out_hi, rng.randint(self._out_lo,
                                                                            self._out_hi)))
                        for _ in range(2))
        zero_point = rng.choice((0, self._out_lo, self._out_hi,
                                 rng.randint(self._out_lo, self._out_hi)))
        word = isa.LAYOUTS[Opcode.POST].to_bytes(
            opcode=int(Opcode.POST), mode=int(isa.Mode.parse(mode)),
            lut=int(cfg.lut and rng.random() < 0.3), zero_point=zero_point, lo=lo, hi=hi)
        return word, mode

    def _param_entry(self, mode) -> bytes:
        """A PARAM entry valid for ``mode`` (None: for both modes)."""
        rng = self.rng
        bias = rng.choice((0, -(1 << 31), (1 << 31) - 1, rng.randint(-(1 << 20), 1 << 20)))
        if mode == "tflite":
            multiplier = rng.choice((0, 1 << 30, (1 << 31) - 1, rng.randint(1 << 30,
                                                                            (1 << 31) - 1)))
            shift = rng.choice((-31, 30, 0, rng.randint(-31, 30)))
        elif mode == "onnx":
            m = rng.choice((2.0 ** -126, 2.0 ** rng.uniform(-30, 23.9), 16777215.0))
            multiplier, shift = struct.unpack("<I", struct.pack("<f", m))[0], 0
        else:   # float32 2 .. 2^24 and m0 in [2^30, 2^31): valid in both modes
            multiplier, shift = rng.randint(0x40000000, 0x4B7FFFFF), 0
        return isa.PARAM_LAYOUT.to_bytes(bias=bias, multiplier=multiplier, shift=shift)

    def _load(self, room, mode):
        rng, cfg = self.rng, self.config
        buffers = [Buffer.ACT, Buffer.WGT, Buffer.PARAM] + ([Buffer.LUT] if cfg.lut else [])
        buffer = rng.choice(buffers)
        size = cfg.entry_bytes(buffer)
        count = rng.randint(1, max(1, min(cfg.depth(buffer), room // size)))
        addr = self._place(count, cfg.depth(buffer))
        if buffer == Buffer.PARAM:
            data = b"".join(self._param_entry(mode) for _ in range(count))
        else:
            data = self._bytes(count * size)
        word = isa.LAYOUTS[Opcode.LOAD].to_bytes(opcode=int(Opcode.LOAD), buffer=int(buffer),
                                                 addr=addr, count=count)
        return word, data

    def _gemm(self) -> bytes:
        rng, cfg = self.rng, self.config
        k = rng.choice((1, 2, rng.randint(1, 16), rng.randint(1, min(cfg.act_depth,
                                                                    cfg.weight_depth))))
        n_cols = rng.randint(1, cfg.cols)
        return isa.LAYOUTS[Opcode.GEMM].to_bytes(
            opcode=int(Opcode.GEMM), clear=rng.randint(0, 1), drain=int(rng.random() < 0.7),
            a_addr=self._place(k, cfg.act_depth), w_addr=self._place(k, cfg.weight_depth), k=k,
            out_addr=self._place(n_cols, cfg.act_depth),
            param_addr=self._place(n_cols, cfg.param_depth),
            m_rows=rng.randint(1, cfg.rows), n_cols=n_cols)

    def _disjoint(self, count_a, count_b, depth):
        """Return two start addresses of ``count_a`` and ``count_b`` entries that do not overlap
        (the emulator refuses an output over its input as undefined), when they fit."""
        for _ in range(8):
            a, b = self._place(count_a, depth), self._place(count_b, depth)
            if a + count_a <= b or b + count_b <= a:
                return a, b
        return a, b

    def _conv(self) -> list:
        """Return ``[WINDOW, CONV]``: a small random layer of a random kind, its maps placed in
        ACT (often ending at its last entry), weights and parameters in WGT and PARAM."""
        from tessera.runtime import conv

        rng, cfg = self.rng, self.config
        kind = ConvKind(rng.randrange(4))
        in_c = rng.randint(1, 4)
        out_c = in_c if kind in (ConvKind.AVERAGE_POOL, ConvKind.MAX_POOL) else \
            in_c * rng.randint(1, 2) if kind == ConvKind.DEPTHWISE else rng.randint(1, 5)
        window = conv.Window(
            in_h=rng.randint(1, 6), in_w=rng.randint(1, 6), in_c=in_c, out_h=rng.randint(1, 5),
            out_w=rng.randint(1, 5), out_c=out_c, kernel_h=rng.randint(1, 3),
            kernel_w=rng.randint(1, 3), stride_h=rng.randint(1, 2), stride_w=rng.randint(1, 2),
            dilation_h=rng.randint(1, 2), dilation_w=rng.randint(1, 2),
            pad_top=rng.randint(0, 1), pad_left=rng.randint(0, 1),
            pad_value=rng.choice((self._out_lo, 0, rng.randint(self._out_lo, self._out_hi))))
        src_count = conv.map_entries(window.in_h * window.in_w, in_c, cfg.rows)
        dst_count = conv.map_entries(window.out_h * window.out_w, out_c, cfg.rows)
        groups, k = conv.conv_groups(kind, window, cfg.cols)
        src, dst = self._disjoint(src_count, dst_count, cfg.act_depth)
        word = isa.CNN_LAYOUTS[CnnOpcode.WINDOW].to_bytes(
            opcode=int(CnnOpcode.WINDOW), **{name: getattr(window, name)
                                              for name in window.__dataclass_fields__})
        return [word, isa.CNN_LAYOUTS[CnnOpcode.CONV].to_bytes(
            opcode=int(CnnOpcode.CONV), kind=int(kind), _pad0=0, src=src, dst=dst,
            w_addr=self._place(groups * k, cfg.weight_depth),
            param_addr=self._place(out_c, cfg.param_depth))]

    def _add(self) -> bytes:
        """Return an ``ADD`` of a few entries (its output in place of an input, or apart)."""
        rng, cfg = self.rng, self.config
        count = rng.choice((1, cfg.rows, rng.randint(1, 24)))
        a_addr, dst = self._disjoint(count, count, cfg.act_depth)
        b_addr = rng.choice((dst, self._place(count, cfg.act_depth)))
        if b_addr != dst and not (b_addr + count <= dst or dst + count <= b_addr):
            b_addr = dst
        return isa.CNN_LAYOUTS[CnnOpcode.ADD].to_bytes(
            opcode=int(CnnOpcode.ADD), _pad0=0, a_addr=a_addr, b_addr=b_addr, dst=dst,
            count=count, param_addr=self._place(3, cfg.param_depth))

    # -- mutated programs --------------------------------------------------------------------

    def mutated_program(self, name) -> bytes:
        """Return a random program broken by the mutation ``name`` (:data:`PROGRAM_MUTATIONS`)."""
        rng, cfg = self.rng, self.config
        insns = self._instructions() or [(isa.Nop().encode(), b"")]
        pick = rng.randrange(len(insns))
        word, payload = insns[pick]
        if name == "field_limit":
            insns[pick] = (self._field_at_limit(word), payload)
        elif name == "bit_flip":
            value = int.from_bytes(word, "little") ^ (1 << rng.randrange(128))
            insns[pick] = (value.to_bytes(isa.INSN_BYTES, "little"), payload)
        elif name == "bad_opcode":
            first = 9 if cfg.cnn else 6
            insns[pick] = (bytes([rng.randint(first, 15) | rng.getrandbits(4) << 4]) +
                           self._bytes(15), b"")
        elif name == "pad_bits":
            opcode = word[0] & 0xF
            layout = self.layouts.get(opcode, isa.LAYOUTS[Opcode.NOP])
            used = sum(f.width for f in layout)
            pads = [layout.offsets[f.name] + b for f in layout if f.name.startswith("_")
                    for b in range(f.width)]
            bit = rng.choice(pads + list(range(used, 128)))
            value = int.from_bytes(word, "little") | 1 << bit
            insns[pick] = (value.to_bytes(isa.INSN_BYTES, "little"), payload)
        elif name == "truncate":
            program = b"".join(a + b for a, b in insns)
            return program[:rng.randrange(len(program))]
        elif name == "load_short":
            word, data = self._load(cfg.max_payload - isa.INSN_BYTES, None)
            return b"".join(a + b for a, b in insns[:pick]) + word + data[:rng.randrange(len(data))]
        elif name in ("store_not_last", "store_too_large"):
            most = cfg.max_payload // cfg.act_entry_bytes
            count = rng.randint(1, most) if name == "store_not_last" else \
                rng.choice((most + 1, 0xFFFF, rng.randint(most + 1, 0xFFFF)))
            addr = self._place(count, cfg.act_depth) if count <= cfg.act_depth else 0
            store = isa.LAYOUTS[Opcode.STORE].to_bytes(opcode=int(Opcode.STORE), addr=addr,
                                                       count=count)
            if name == "store_not_last":
                insns.insert(pick, (store, b""))
                insns.append((isa.Nop().encode(), b""))
            else:
                insns.append((store, b""))
        else:   # random_insn
            insns.insert(pick, (self._bytes(isa.INSN_BYTES), b""))
        program = b"".join(a + b for a, b in insns)
        return program[:cfg.max_payload]

    def _field_at_limit(self, word) -> bytes:
        """Set one field of instruction ``word`` to a limit value (an edge, maybe past it)."""
        rng = self.rng
        opcode = word[0] & 0xF
        layout = self.layouts.get(opcode)
        if layout is None:
            return word
        fields = [f for f in layout if f.name != "opcode"]
        if not fields:
            return word
        f = rng.choice(fields)
        if f.signed:
            value = min(f.max, max(f.min, rng.choice((
                f.min, f.max, self._out_lo - 1, self._out_lo, self._out_hi, self._out_hi + 1,
                -1, 0))))
        else:
            value = rng.choice(self.edges) & ((1 << f.width) - 1)
        values = layout.unpack(int.from_bytes(word, "little"))
        values[f.name] = value
        return layout.to_bytes(**values)

    # -- link faults -------------------------------------------------------------------------

    def link_fault(self, name) -> tuple:
        """Return the parts of the link fault ``name`` (in :data:`LINK_FAULTS`)."""
        rng, cfg = self.rng, self.config
        # After noise, neither COUNTERS nor CLEAR_COUNTERS: a fake frame in the noise may be
        # answered while the request arrives, and how many of the answer's bytes tx_bytes then
        # counts depends on timing (the link is stop-and-wait, docs/protocol.md).
        kinds = [k for k in VALID_KINDS
                 if name != "noise" or k not in ("counters", "clear_counters")]
        frame = bytearray(self.valid_request(rng.choice(kinds)))
        if name == "payload_crc":
            frame[-rng.randint(1, 2)] ^= 1 << rng.randrange(8)
        elif name == "header_crc":
            frame[5] ^= 1 << rng.randrange(8)
        elif name == "header_byte":
            frame[rng.randrange(5)] ^= rng.randint(1, 255)
        elif name in ("length", "oversized"):
            length = int.from_bytes(frame[3:5], "little")
            if name == "length":
                new = rng.choice([v for v in (0, length - 1, length + 1, rng.randint(0, length +
                                 8), cfg.max_payload) if 0 <= v <= cfg.max_payload and v != length]
                                 or [length + 1])
            else:
                new = rng.choice((cfg.max_payload + 1, 0xFFFF, rng.randint(cfg.max_payload + 1,
                                                                           cfg.max_payload + 64)))
            frame[3:5] = new.to_bytes(2, "little")
            frame[5] = crc8(frame[:5])
            if name == "oversized" and rng.random() < 0.5:
                return (bytes(frame), self.valid_request("hello"))   # cut by the timeout
        elif name == "bad_kind":
            kind = rng.choice((0, 6, 0x7F, 0x80, 0xFF, rng.randint(6, 255)))
            frame = encode_frame(kind, self.seq(), self._bytes(rng.randint(0, 8)))
        elif name == "payload_on_empty_kind":
            kind = rng.choice((Kind.HELLO, Kind.COUNTERS, Kind.CLEAR_COUNTERS))
            frame = encode_frame(kind, self.seq(), self._bytes(rng.randint(1, cfg.max_payload)))
        elif name == "read_length":
            size = rng.choice((0, 1, 3, 5, rng.randint(6, cfg.max_payload)))
            frame = encode_frame(Kind.READ, self.seq(), self._bytes(size))
        elif name == "read_limits":
            most = cfg.max_payload // cfg.act_entry_bytes
            count = rng.choice((0, 1, most, most + 1, cfg.act_depth, 0xFFFF))
            addr = rng.choice((0, cfg.act_depth - min(count, cfg.act_depth),
                               cfg.act_depth - count + 1 if count <= cfg.act_depth else 0,
                               cfg.act_depth, 0xFFFF))
            frame = encode_frame(Kind.READ, self.seq(), READ_LAYOUT.to_bytes(addr=addr % 65536,
                                                                             count=count))
        elif name == "noise":
            return (self._noise() + bytes(frame),)
        else:   # timeout_mid_frame
            cut = rng.randint(1, len(frame) - 1)
            return (bytes(frame[:cut]), bytes(frame[cut:]))
        return (bytes(frame),)

    def _noise(self) -> bytes:
        """Random bytes with SYNC bytes and, sometimes, a fake header with a good CRC-8."""
        rng = self.rng
        noise = bytearray(self._bytes(rng.randint(1, 64)))
        for _ in range(rng.randint(0, 4)):
            noise[rng.randrange(len(noise))] = SYNC
        if rng.random() < 0.3:
            head = bytes([SYNC, rng.choice(list(Kind)), self.seq()]) + \
                rng.randint(0, 8).to_bytes(2, "little")
            noise += head + bytes([crc8(head)]) + self._bytes(rng.randint(0, 12))
        return bytes(noise)



def run_fuzz(sim, config, *, stimuli, seed, test_dir, break_at=None) -> dict:
    """Run the fuzz test (``sim/system_fuzz.py``) on a build; return its summary.

    Parameters
    ----------
    sim : tessera.sim.runner.SimBuild
        The build of ``config`` (:func:`tessera.sim.runner.build`).
    config : tessera.spec.AcceleratorConfig
    stimuli, seed : int
        How many stimuli, drawn from which seed.
    test_dir : path
        Where the results, the log and the summary (``fuzz.json``) go.
    break_at : int, optional
        Falsify the model's answers from this stimulus on (the self-check: the run fails).

    Returns
    -------
    dict
        ``seed``, ``stimuli``, ``sent``, ``undefined``, ``undefined_run``, ``requests``, ``bytes``,
        ``responses_checked``, ``mismatches``, ``hangs``, ``cycles``, ``wall_s``, ``kinds``,
        ``statuses`` and ``executed`` (counts by stimulus kind, by response status, and of the
        instructions, by name, in the ``EXEC`` programs answered ``OK``).

    Raises
    ------
    AssertionError
        A response differed from the emulator's or the design hung; the message names the
        stimulus, its bytes and the seed.
    """
    from tessera.sim import runner
    report = Path(test_dir) / "fuzz.json"
    env = {"TESSERA_FUZZ_FRAMES": str(stimuli), "TESSERA_SEED": str(seed),
           "TESSERA_FUZZ_REPORT": str(report)}
    if break_at is not None:
        env["TESSERA_FUZZ_BREAK_AT"] = str(break_at)
    runner.run_test(sim, "system_fuzz", test_dir=test_dir, config=config, extra_env=env)
    return json.loads(report.read_text())
