"""Helpers for the executor/top-level simulator tests: drive request bytes into an
``Accelerator`` under the Amaranth simulator and collect the response bytes per request, and run
the same bytes through the emulator (the protocol oracle)."""

from amaranth.sim import Simulator

from tessera.hw.top import Accelerator
from tessera.runtime.emulator import Emulator
from tessera.spec import AcceleratorConfig
from tessera.spec.protocol import FrameParser, decode_counters

CONFIG = AcceleratorConfig(rows=2, cols=2, act_depth=32, weight_depth=32, param_depth=8,
                           max_payload=64, rx_timeout_cycles=64)


def run_rtl(requests, config=CONFIG, *, max_cycles=20000, trace=None, wait_idle=True,
            top=Accelerator, monitor=None):
    """Send each request (bytes) and wait until the device is idle; return the responses.

    ``trace``, if a list, receives the cycles each request took. With ``wait_idle=False`` the
    next request follows as soon as the response frame is complete, busy or not (what a host
    does; after an ``EXEC`` the Core must be idle by then). ``top(config)`` builds the design;
    ``monitor(ctx, dut)``, if given, is called in every cycle before the clock edge.
    """
    dut = top(config)
    responses = []

    async def testbench(ctx):
        ctx.set(dut.o_tx.ready, 1)
        for request in requests:
            sent, out, cycles = 0, bytearray(), 0
            while True:
                pending = sent < len(request)
                ctx.set(dut.i_rx.valid, pending)
                if pending:
                    ctx.set(dut.i_rx.payload, request[sent])
                rx_ready = ctx.get(dut.i_rx.ready)
                tx_valid = ctx.get(dut.o_tx.valid)
                tx_byte = ctx.get(dut.o_tx.payload)
                busy = ctx.get(dut.busy)
                if monitor is not None:
                    monitor(ctx, dut)
                if not pending and not busy:
                    assert not tx_valid, "o_tx.valid while busy is low"
                    break
                if not pending and not wait_idle and not tx_valid and out and \
                        FrameParser(max_payload=0xFFFF).feed(bytes(out)):
                    break
                await ctx.tick()
                cycles += 1
                assert cycles < max_cycles, f"request {request[:8].hex()}... hangs"
                if pending and rx_ready:
                    sent += 1
                if tx_valid:
                    out.append(tx_byte)
            responses.append(bytes(out))
            if trace is not None:
                trace.append(cycles)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return responses


def run_emulator(requests, config=CONFIG):
    """Return the emulator's response bytes to each request."""
    emulator = Emulator(config)
    out = []
    for request in requests:
        emulator.feed(request)
        out.append(emulator.read(1 << 20))
    return out


def parse(response, config=CONFIG):
    """Return the single frame in ``response``."""
    parser = FrameParser(max_payload=0xFFFF)
    frames = parser.feed(response)
    assert len(frames) == 1 and not parser.bad_frames and not parser.skipped_bytes, response.hex()
    return frames[0]


def exact_counters(payload):
    """Counters that the RTL and the emulator's cycle model agree on exactly."""
    values = decode_counters(payload)
    del values["cycles"]
    return values
