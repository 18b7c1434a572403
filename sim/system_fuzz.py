"""cocotb fuzz test: random and mutated frames into the RTL, every answer equal to the emulator's.

``$TESSERA_FUZZ_FRAMES`` stimuli (default 200) from :class:`fuzz_frames.FrameFuzzer`, seeded
with ``$TESSERA_SEED`` (default 1): valid requests and random programs, programs broken at every
check of docs/isa.md, link faults of docs/protocol.md, line noise, frames cut by the receive
timeout. Each goes to the RTL and to the emulator alike through :meth:`tb.TB.transact`, which
compares every response frame byte for byte (``COUNTERS`` counter by counter) and checks that
the design goes idle and silent; where the sender pauses (between the parts of a stimulus, or
after one that leaves a partial frame) it stays silent for ``rx_timeout_cycles`` and the model
drops the partial frame too. After every bad stimulus a good ``EXEC`` (``LOAD`` then ``STORE``)
must come back with exactly the loaded data: the device never wedges.

Programs the emulator refuses as undefined (``HazardError``, ``ParameterError``: docs/isa.md
leaves the hardware's result open) are counted as ``undefined``; when one is a whole ``EXEC``
frame (``undefined_run``) it still goes to the RTL alone, which must answer it (any status) and
go idle, and the testbench then rewrites every buffer, the accumulators, the post state and the
counters from the model's state (each of those requests checked as usual).

A failure names the stimulus (index, kind, bytes) and the seed; the run is reproducible from the
seed alone. ``$TESSERA_FUZZ_REPORT`` names a JSON file for the summary (stimuli, requests,
responses checked, statuses seen, the instructions of the programs answered OK, mismatches
and hangs, which are 0 when the run ends). With ``config.cnn`` the programs also hold
``WINDOW``, ``CONV`` and ``ADD`` (``fuzz_frames``), and the resynchronisation after an
undefined program restores the window state too.
``$TESSERA_FUZZ_BREAK_AT`` (self-check) falsifies the model's answers from that stimulus on,
so the run must fail there.
"""

import collections
import copy
import json
import os
import random
import time

import cocotb

from tessera.runtime.errors import HazardError, ParameterError
from tessera.spec import isa
from tessera.spec.isa import Buffer, CnnOpcode, Opcode
from tessera.spec.packing import pack_entries, unpack_entries
from tessera.spec.protocol import (FRAME_OVERHEAD, HEADER_BYTES, TRAILER_BYTES, FrameParser, Kind,
                                   Status, crc8, encode_frame)

from fuzz_frames import FrameFuzzer
from tb import TB


def _undefined(model, parts):
    """Return why the model refuses ``parts`` as undefined (None: defined), on a copy of it."""
    trial = copy.deepcopy(model)
    try:
        for index, part in enumerate(parts):
            if index:
                trial.rx_timeout()
            trial.feed(part)
    except (HazardError, ParameterError) as e:
        return f"{type(e).__name__}: {e}"
    return None


async def _expire(tb):
    """Stay silent until the receive timeout has dropped any partial frame, in both."""
    await tb.idle_cycles(tb.config.rx_timeout_cycles + 4)
    tb.model.rx_timeout()


async def _send(tb, parts, what="its"):
    """Send ``parts`` (a receive timeout between them); return the checked response frames."""
    got = []
    for index, part in enumerate(parts):
        if index:
            await _expire(tb)
        parsed = FrameParser(max_payload=tb.config.max_payload).feed(part)
        counters = {f.seq for f in parsed if f.kind == Kind.COUNTERS}
        got += await tb.transact(part, counter_seqs=counters, what=f"{what} part {index}")
    if tb.model.receiving:
        await _expire(tb)
    return got


async def _still_works(tb, fuzzer):
    """A good EXEC answers OK with exactly the data it loaded."""
    frame, (addr, count, data) = fuzzer.good_exec(tb.model.last_exec_seq)
    got = await _send(tb, (frame,), "the good EXEC after it:")
    rows, bits = tb.config.rows, tb.config.input_bits
    expected = pack_entries(unpack_entries(data, count, rows, bits), bits)
    assert [(g.kind, g.payload) for g in got] == [(Status.OK, expected)], (
        f"the good EXEC after it (LOAD then STORE ACT[{addr}:{addr + count}]) was "
        f"answered {[(hex(g.kind), g.payload.hex()) for g in got]}, not OK {expected.hex()}")


def _whole_exec_frame(parts) -> bool:
    """Whether ``parts`` is one whole, well-formed ``EXEC`` frame."""
    part = parts[0]
    return len(parts) == 1 and len(part) >= FRAME_OVERHEAD and part[1] == Kind.EXEC and \
        part == encode_frame(Kind.EXEC, part[2], part[HEADER_BYTES:-TRAILER_BYTES])


async def _undefined_answered(tb, frame, what):
    """Send an undefined ``EXEC`` to the RTL alone: it must answer (any status) and go idle.

    The model does not see it; :func:`_resync` then gives the RTL the model's state again.
    """
    tb.driver.send(frame)
    got = await tb._collect(1, tb._timeout_cycles(frame), f"{what}: the undefined EXEC")
    assert got[0].seq == frame[2], \
        f"{what}: the undefined EXEC (seq {frame[2]}) was answered with seq {got[0].seq}"
    await tb.settle()


async def _resync(tb):
    """Make the RTL's state the model's again (after an undefined program ran on it alone):
    forget the EXEC seq, rewrite every buffer, set the accumulators, the post state and (ISA
    version 3) the window state, clear the counters -- each request checked against the model
    as usual."""
    cfg, machine = tb.config, tb.model.machine
    await tb.request(Kind.HELLO)
    contents = {Buffer.ACT: lambda a, b: pack_entries(machine.act[a:b], cfg.input_bits),
                Buffer.WGT: lambda a, b: pack_entries(machine.wgt[a:b], cfg.weight_bits),
                Buffer.PARAM: lambda a, b: machine.param[a:b].tobytes(),
                Buffer.LUT: lambda a, b: machine.lut[a:b].tobytes()}
    for buffer, read in contents.items():
        step = cfg.max_load_entries(buffer)
        for addr in range(0, cfg.depth(buffer), step):
            count = min(step, cfg.depth(buffer) - addr)
            load = isa.Load(buffer, addr, count, read(addr, addr + count)).encode()
            response = await tb.exec(load, what=f"resync LOAD {buffer.name}[{addr}:{addr + count}]")
            assert response.kind == Status.OK, f"resync LOAD answered {response.kind:#04x}"
    post = machine.post
    # A GEMM with clear sets the accumulators alike (the buffers now agree); the POST
    # restores the post state (refused by both alike if it is the unbuilt reset mode).
    response = await tb.exec(isa.Gemm(a_addr=0, w_addr=0, k=1, m_rows=1, n_cols=1, clear=True,
                                      drain=False).encode() + isa.Sync().encode(),
                             what="resync GEMM")
    assert response.kind == Status.OK, f"resync GEMM answered {response.kind:#04x}"
    await tb.exec(isa.LAYOUTS[Opcode.POST].to_bytes(
        opcode=int(Opcode.POST), mode=int(post.mode), lut=int(post.lut),
        zero_point=post.zero_point, lo=post.lo, hi=post.hi), what="resync POST")
    if cfg.cnn:
        window = machine.window
        response = await tb.exec(isa.CNN_LAYOUTS[CnnOpcode.WINDOW].to_bytes(
            opcode=int(CnnOpcode.WINDOW), **{name: getattr(window, name)
                                              for name in window.__dataclass_fields__}),
            what="resync WINDOW")
        assert response.kind == Status.OK, f"resync WINDOW answered {response.kind:#04x}"
    await tb.request(Kind.HELLO)
    await tb.request(Kind.CLEAR_COUNTERS)


def _falsify(model):
    """Make the model answer wrongly from now on (the self-check of the fuzz test)."""
    read = model.read

    def wrong(max_bytes):
        out = bytearray(read(max_bytes))
        if len(out) >= HEADER_BYTES:    # another seq, a good header CRC: a valid frame
            out[2] ^= 1
            out[5] = crc8(out[:5])
        return bytes(out)
    model.read = wrong


def _instruction_names(frame, config):
    """Return the names of the instructions of an ``EXEC`` frame that ran and answered OK."""
    program = isa.decode_program(frame[HEADER_BYTES:-TRAILER_BYTES], config)
    return [type(insn).__name__.upper() for insn in program]


@cocotb.test()
async def fuzz(dut):
    """Random and mutated frames, every response checked; a good request after each bad one."""
    seed = int(os.environ.get("TESSERA_SEED", "1"))
    total = int(os.environ.get("TESSERA_FUZZ_FRAMES", "200"))
    break_at = int(os.environ.get("TESSERA_FUZZ_BREAK_AT", "-1"))
    tb = TB(dut, seed=seed)
    await tb.start()
    fuzzer = FrameFuzzer(tb.config, random.Random(f"fuzz-{seed}"))
    dut._log.info("fuzz: seed %d, %d stimuli, %dx%d configuration (reproduce with "
                  "TESSERA_SEED=%d)", seed, total, tb.config.rows, tb.config.cols, seed)
    kinds, statuses, executed = collections.Counter(), collections.Counter(), collections.Counter()
    undefined = undefined_run = requests = sent_bytes = 0
    falsified = False
    started = time.monotonic()
    for index in range(total):
        stimulus = fuzzer.next()
        what = f"fuzz stimulus {index} ({stimulus.name}, seed {seed})"
        try:
            reason = _undefined(tb.model, stimulus.parts)
        except Exception as e:
            raise AssertionError(f"{what}: the emulator failed on it ({type(e).__name__}: {e}); "
                                 f"bytes {' | '.join(p.hex() for p in stimulus.parts)}") from e
        if reason is not None:
            undefined += 1
            if _whole_exec_frame(stimulus.parts):
                try:
                    await _undefined_answered(tb, stimulus.parts[0], what)
                    await _resync(tb)
                except AssertionError as e:
                    raise AssertionError(f"{what} failed ({reason}): {e}\nits bytes: "
                                         f"{stimulus.parts[0].hex()}") from None
                undefined_run += 1
            continue
        if index >= break_at >= 0 and not falsified:
            _falsify(tb.model)
            falsified = True
        kinds[stimulus.name] += 1
        try:
            # a repeated EXEC sequence number is answered from memory, nothing runs
            whole = _whole_exec_frame(stimulus.parts)
            replayed = whole and tb.model.last_exec_seq == stimulus.parts[0][2]
            got = await _send(tb, stimulus.parts)
            statuses.update(Status(g.kind).name if g.kind in set(Status) else hex(g.kind)
                            for g in got)
            if whole and [g.kind for g in got] == [Status.OK]:
                executed.update(["REPLAYED"] if replayed else _instruction_names(
                    stimulus.parts[0], tb.config))
            requests += 1
            if stimulus.bad:
                await _still_works(tb, fuzzer)
                requests += 1
        except AssertionError as e:
            raise AssertionError(
                f"{what} failed: {e}\nits bytes: {' | '.join(p.hex() for p in stimulus.parts)}"
                f"\nreproduce: TESSERA_SEED={seed} TESSERA_FUZZ_FRAMES={index + 1} (see "
                f"bench/bench_rtl_fuzz.py)") from None
        sent_bytes += sum(len(p) for p in stimulus.parts)
        if (index + 1) % 500 == 0:
            dut._log.info("fuzz: %d of %d stimuli, %d responses checked", index + 1, total,
                          tb.scoreboard.checked)
    summary = dict(seed=seed, stimuli=total, sent=total - undefined, undefined=undefined,
                   undefined_run=undefined_run,
                   requests=requests, bytes=sent_bytes, responses_checked=tb.scoreboard.checked,
                   mismatches=0, hangs=0, cycles=tb.cycle,
                   wall_s=round(time.monotonic() - started, 1), kinds=dict(sorted(kinds.items())),
                   statuses=dict(sorted(statuses.items())),
                   executed=dict(sorted(executed.items())))
    dut._log.info("fuzz summary: %s", json.dumps(summary))
    report = os.environ.get("TESSERA_FUZZ_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(summary, f, indent=1)
