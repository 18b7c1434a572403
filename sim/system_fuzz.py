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
leaves the hardware's result open) are not sent; they are counted as ``undefined``.

A failure names the stimulus (index, kind, bytes) and the seed; the run is reproducible from the
seed alone. ``$TESSERA_FUZZ_REPORT`` names a JSON file for the summary (stimuli, requests,
responses checked, statuses seen, mismatches and hangs, which are 0 when the run ends).
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
from tessera.spec.packing import pack_entries, unpack_entries
from tessera.spec.protocol import HEADER_BYTES, FrameParser, Kind, Status, crc8

from fuzz_frames import FrameFuzzer
from tb import TB, config_from_env

_CONFIG = config_from_env()


def _receiving(model) -> bool:
    """Whether the model holds part of a frame (its receiver state: the timeout would drop it)."""
    return bool(model._rx or model._skip)


def _last_exec_seq(model):
    """The ``seq`` the model would answer again without running (its dedup memory)."""
    return model._last_exec[0] if model._last_exec is not None else None


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
    if _receiving(tb.model):
        await _expire(tb)
    return got


async def _still_works(tb, fuzzer):
    """A good EXEC answers OK with exactly the data it loaded."""
    frame, (addr, count, data) = fuzzer.good_exec(_last_exec_seq(tb.model))
    got = await _send(tb, (frame,), "the good EXEC after it:")
    rows, bits = tb.config.rows, tb.config.input_bits
    expected = pack_entries(unpack_entries(data, count, rows, bits), bits)
    assert [(g.kind, g.payload) for g in got] == [(Status.OK, expected)], (
        f"the good EXEC after it (LOAD then STORE ACT[{addr}:{addr + count}]) was "
        f"answered {[(hex(g.kind), g.payload.hex()) for g in got]}, not OK {expected.hex()}")


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
    kinds, statuses = collections.Counter(), collections.Counter()
    undefined = requests = sent_bytes = 0
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
            continue
        if index >= break_at >= 0 and not falsified:
            _falsify(tb.model)
            falsified = True
        kinds[stimulus.name] += 1
        try:
            got = await _send(tb, stimulus.parts)
            statuses.update(Status(g.kind).name if g.kind in set(Status) else hex(g.kind)
                            for g in got)
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
                   requests=requests, bytes=sent_bytes, responses_checked=tb.scoreboard.checked,
                   mismatches=0, hangs=0, cycles=tb.cycle,
                   wall_s=round(time.monotonic() - started, 1), kinds=dict(sorted(kinds.items())),
                   statuses=dict(sorted(statuses.items())))
    dut._log.info("fuzz summary: %s", json.dumps(summary))
    report = os.environ.get("TESSERA_FUZZ_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(summary, f, indent=1)
