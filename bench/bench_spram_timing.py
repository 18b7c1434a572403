"""Place and route :class:`tessera.hw.spram.SpramMemory` on the iCE40UP5K; print its paths.

The memory runs on its own clock; the registers that drive its ports (a shift register fed from
one pin) run on a second clock and the register that takes its read data on a third, so that
nextpnr's cross-domain reports are the memory's two paths alone:

- *address*: a port register -> the write/read address multiplexer, chip select -> the
  SB_SPRAM256KA's ADDRESS/CHIPSELECT setup;
- *read*: the SB_SPRAM256KA's clock-to-DATAOUT -> the row multiplexer -> a register's setup.

Each shape is synthesised with Yosys ``synth_ice40`` and placed and routed with nextpnr-ice40
(``--up5k --package sg48``, seed 1), ~5 s each:

    .venv/bin/python bench/bench_spram_timing.py [--json]
"""

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

from amaranth import Cat, ClockDomain, Module, Signal
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable
from amaranth_boards.icebreaker import ICEBreakerPlatform

from tessera.hw.spram import SpramMemory
from tessera.hw.toolchain import resolve_tools

#: (width, depth): the icebreaker-cnn preset's ACT (two blocks wide) and WGT (two deep), and
#: all four blocks deep.
SHAPES = [(32, 16384), (16, 32768), (16, 65536)]


class _Wrapper(Elaboratable):
    """The memory between a shift register (clock ``src``) and a read data register (``dst``)."""

    def __init__(self, width, depth):
        self.width, self.depth = width, depth
        self.sin, self.sout = Signal(), Signal()
        self.domains = [ClockDomain(name, reset_less=True) for name in ("sync", "src", "dst")]

    def elaborate(self, platform):
        m = Module()
        m.domains += self.domains
        m.submodules.mem = mem = SpramMemory(width=self.width, depth=self.depth)
        ports = Cat(mem.write.en, mem.read.en, mem.write.addr, mem.read.addr, mem.write.data)
        shift = Signal(len(ports))
        m.d.src += shift.eq(Cat(self.sin, shift[:-1]))
        m.d.comb += ports.eq(shift)
        data = Signal(self.width)
        m.d.dst += [data.eq(mem.read.data), self.sout.eq(data.xor())]
        return m


def measure(width, depth, directory):
    """Return the memory's SPRAMs, LUT4s, flip-flops and path delays (ns) on the UP5K."""
    tools = resolve_tools("ice40")
    top = _Wrapper(width, depth)
    ports = [top.sin, top.sout] + [domain.clk for domain in top.domains]
    (directory / "top.il").write_text(rtlil.convert(top, name="top",
                                                    platform=ICEBreakerPlatform(), ports=ports))
    subprocess.run([tools["YOSYS"].command, "-q", "-p",
                    "read_rtlil top.il; synth_ice40 -top top -json top.json"],
                   cwd=directory, check=True, timeout=600)
    done = subprocess.run([tools["NEXTPNR_ICE40"].command, "--up5k", "--package", "sg48",
                           "--json", "top.json", "--freq", "30", "--seed", "1",
                           "--timing-allow-fail"], cwd=directory, capture_output=True,
                          text=True, timeout=600, check=True)
    log = done.stderr

    def last(pattern):
        return float(re.findall(pattern, log)[-1])

    return {
        "width": width, "depth": depth,
        "spram": int(re.findall(r"ICESTORM_SPRAM:\s+(\d+)/", log)[-1]),
        **_memory_cells(width, depth, directory, tools),
        "address_path_ns": last(r"Max delay posedge src_clk\S*\s+-> posedge clk\S*\s*: "
                                r"([\d.]+) ns"),
        "read_path_ns": last(r"Max delay posedge clk\S*\s+-> posedge dst_clk\S*\s*: "
                             r"([\d.]+) ns"),
    }


def _memory_cells(width, depth, directory, tools):
    """The memory's own LUT4s and flip-flops (synthesised alone, as tests/test_hw_spram.py)."""
    (directory / "memory.il").write_text(rtlil.convert(
        SpramMemory(width=width, depth=depth), name="memory", platform=ICEBreakerPlatform()))
    subprocess.run([tools["YOSYS"].command, "-q", "-p",
                    "read_rtlil memory.il; synth_ice40 -top memory; tee -q -o memory.txt stat"],
                   cwd=directory, check=True, timeout=600)
    cells = {name: int(count) for count, name in re.findall(
        r"^\s+(\d+)\s+(SB_\S+)\s*$", (directory / "memory.txt").read_text(), flags=re.MULTILINE)}
    return {"lut4": cells.get("SB_LUT4", 0),
            "ff": sum(count for name, count in cells.items() if name.startswith("SB_DFF"))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    rows = []
    for width, depth in SHAPES:
        with tempfile.TemporaryDirectory() as directory:
            rows.append(measure(width, depth, Path(directory)))
    if args.json:
        print(json.dumps({"spram_timing": rows}))
        return
    print("| shape | SB_SPRAM256KA | LUT4 | FF | address path | read path |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['width']} x {row['depth']} | {row['spram']} | {row['lut4']} | "
              f"{row['ff']} | {row['address_path_ns']:.2f} ns | {row['read_path_ns']:.2f} ns |")


if __name__ == "__main__":
    main()
