"""hw/spram.py: a memory on the iCE40UP5K's SB_SPRAM256KA blocks, and its generic form.

A Python model of the contract (writes take effect; a read loads ``read.data``, held until the
next read; a write, alone or with a read, leaves it undefined; unwritten entries are undefined)
is checked against the generic form in the Amaranth simulator, and the iCE40 form (Yosys's own
SB_SPRAM256KA model from ``cells_sim.v``) side by side with the generic form's Verilog on every
installed simulator, cycle for cycle, on random stimulus with the borders of every block. Yosys
must map a 64 KB memory onto exactly two SB_SPRAM256KA, and the icebreaker-cnn preset's ACT and
WGT, placed and routed on the UP5K, must take the four blocks and leave most of the clock period.
"""

import importlib.util
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Elaboratable
from amaranth.utils import ceil_log2
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.icestick import ICEStickPlatform

from ecp5_side_by_side import pack_words
from sim_helpers import run_cycles
from tessera.compiler.presets import get_preset
from tessera.hw import spram
from tessera.hw.spram import SPRAM_DEPTH, SpramMemory, has_spram, sb_spram256ka_sim_model
from tessera.hw.toolchain import resolve_tools
from tessera.sim.runner import available_simulators
from tessera.sim.standalone import build_testbench, run_testbench

#: (width, depth) of the forms tested: one block; narrower and shallower than a block; two
#: blocks wide (the ACT of the icebreaker-cnn preset); two deep (its WGT); 2 x 2 with a partial
#: word and a partial last row.
SHAPES = [(16, SPRAM_DEPTH), (8, 1000), (32, SPRAM_DEPTH), (16, 2 * SPRAM_DEPTH), (20, 20000)]


def stimulus(rng, width, depth, cycles=600):
    """Per-cycle inputs: writes, reads, idle cycles and a few same-cycle read + write.

    Addresses come mostly from the borders of every block (first, last, either side of a row
    boundary) so that reads hit written entries across rows; data includes 0 and all ones.
    """
    borders = {0, 1, depth - 1, depth - 2}
    for row in range(SPRAM_DEPTH, depth, SPRAM_DEPTH):
        borders |= {row - 1, row, row + 1}
    borders = sorted(a for a in borders if 0 <= a < depth)
    top = (1 << width) - 1

    def address():
        if rng.random() < 0.7:
            return int(rng.choice(borders))
        return int(rng.integers(0, depth))

    def word():
        return int(rng.choice([0, top, int(rng.integers(0, top + 1))]))

    script = [{"write__en": 1, "write__addr": a, "write__data": word(), "read__en": 0,
               "read__addr": 0} for a in borders]
    for _ in range(cycles):
        kind = rng.choice(["write", "read", "read", "idle", "both"], p=[.3, .35, .2, .1, .05])
        script.append({"write__en": int(kind in ("write", "both")),
                       "write__addr": address(), "write__data": word(),
                       "read__en": int(kind in ("read", "both")), "read__addr": address()})
    return script


def model(script):
    """The contract: ``read.data`` after every cycle of ``script``, ``None`` where undefined."""
    memory, data, out = {}, None, []
    for cycle in script:
        if cycle["write__en"]:
            memory[cycle["write__addr"]] = cycle["write__data"]
            data = None
        elif cycle["read__en"]:
            data = memory.get(cycle["read__addr"])
        out.append(data)
    return out


class _PortView(Elaboratable):
    """``run_cycles`` sets ports by attribute: expose ``write__en`` as ``dut.write.en``."""

    def __init__(self, dut):
        self._dut = dut

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        interface, member = name.split("__")
        return getattr(getattr(self._dut, interface), member)

    def elaborate(self, platform):
        return self._dut


@pytest.mark.parametrize("width, depth", SHAPES)
def test_generic_form_equals_the_model_and_poisons_reads_across_writes(width, depth):
    rng = np.random.default_rng(width * 7 + depth)
    script = stimulus(rng, width, depth)
    want = model(script)
    dut = SpramMemory(width=width, depth=depth)
    got = run_cycles(_PortView(dut), script, dut.read.data)
    defined = [i for i, value in enumerate(want) if value is not None]
    assert len(defined) > len(script) // 3           # the stimulus reads what it wrote
    assert [got[i] for i in defined] == [want[i] for i in defined]
    # a write inverts the read data (the blocks' DATAOUT is undefined after one): a design
    # that holds a read across a write, or reads in a write cycle, fails bit-exact tests
    top = (1 << width) - 1
    writes = [i for i, cycle in enumerate(script) if cycle["write__en"] and i > 0]
    assert [got[i] for i in writes] == [got[i - 1] ^ top for i in writes]


def test_read_holds_and_selects_the_row_read_last():
    # rows 0 and 1 of a 2-deep memory (the iCE40 form's row register): held while idle
    script = [
        {"write__en": 1, "write__addr": 5, "write__data": 0x1234},
        {"write__en": 1, "write__addr": SPRAM_DEPTH + 5, "write__data": 0xBEEF},
        {"write__en": 0, "read__en": 1, "read__addr": 5},
        {"read__en": 0, "read__addr": SPRAM_DEPTH + 5},        # held
        {"read__en": 1, "read__addr": SPRAM_DEPTH + 5},
        {"read__en": 0, "read__addr": 5},                      # held
        {"read__en": 1, "read__addr": 5},
    ]
    dut = SpramMemory(width=16, depth=2 * SPRAM_DEPTH)
    assert run_cycles(_PortView(dut), script, dut.read.data)[2:] == [
        0x1234, 0x1234, 0xBEEF, 0xBEEF, 0x1234]


def _bench(width, depth, script):
    """A standalone testbench driving the iCE40 and the generic form with ``script``."""
    aw = max(1, ceil_log2(depth))
    fields = [("write__en", 1), ("read__en", 1), ("write__addr", aw), ("read__addr", aw),
              ("write__data", width)]
    words = pack_words(fields, {name: [cycle[name] for cycle in script] for name, _ in fields})
    total = sum(bits for _, bits in fields)
    connect, top = [], total
    for name, bits in fields:
        connect.append(f".{name}(cur[{top - 1}:{top - bits}])")
        top -= bits
    ports = f"(.clk(clk), .rst(rst), {', '.join(connect)}"
    sources = {
        "ice40.v": verilog.convert(SpramMemory(width=width, depth=depth), name="spram_ice40",
                                   platform=ICEBreakerPlatform(), emit_src=False),
        "generic.v": verilog.convert(SpramMemory(width=width, depth=depth),
                                     name="spram_generic", emit_src=False),
        "sb_spram256ka.v": sb_spram256ka_sim_model(),
        "tb.v": f"""`timescale 1ns/1ps
module tb;
    reg [{total - 1}:0] stim [0:{len(words) - 1}];
    reg [{total - 1}:0] cur = 0;
    reg clk = 0, rst = 1;
    wire [{width - 1}:0] ice40, generic;
    spram_ice40 dut_ice40 {ports}, .read__data(ice40));
    spram_generic dut_generic {ports}, .read__data(generic));
    integer i;
    always #5 clk = ~clk;
    initial begin
        $readmemh("stimulus.hex", stim);
        @(posedge clk); @(posedge clk);
        #1 rst = 0;
        for (i = 0; i < {len(words)}; i = i + 1) begin
            cur = stim[i];
            @(posedge clk);
            #1 $display("%0d %h %h", i, ice40, generic);
        end
        $finish;
    end
endmodule
"""}
    return sources, words


def _hex(text):
    return None if re.search("[xXzZ]", text) else int(text, 16)


@pytest.mark.parametrize("width, depth", SHAPES)
def test_ice40_form_on_the_cells_sim_model_equals_the_generic_form(tmp_path, width, depth):
    rng = np.random.default_rng(width * 11 + depth)
    script = stimulus(rng, width, depth)
    want = model(script)
    sources, words = _bench(width, depth, script)
    (tmp_path / "stimulus.hex").write_text("\n".join(words) + "\n")
    simulators = available_simulators()
    assert "verilator" in simulators
    for simulator in simulators:
        stdout = run_testbench(build_testbench(sources, "tb", simulator), tmp_path)
        lines = [line.split() for line in stdout.splitlines() if line[:1].isdigit()]
        assert len(lines) == len(script), stdout[-2000:]
        ice40 = [_hex(line[1]) for line in lines]
        generic = [_hex(line[2]) for line in lines]
        defined = [i for i, value in enumerate(want) if value is not None]
        assert len(defined) > len(script) // 3
        assert [ice40[i] for i in defined] == [want[i] for i in defined], simulator
        assert [generic[i] for i in defined] == [want[i] for i in defined], simulator


def _synth_stat(dut, tmp_path):
    yosys = resolve_tools("ice40")["YOSYS"].command
    (tmp_path / "top.il").write_text(rtlil.convert(dut, name="top",
                                                   platform=ICEBreakerPlatform()))
    subprocess.run([yosys, "-q", "-p", "read_rtlil top.il; synth_ice40 -top top; "
                    "tee -q -o stat.txt stat"],
                   cwd=tmp_path, capture_output=True, text=True, timeout=600, check=True)
    text = (tmp_path / "stat.txt").read_text()
    return {name: int(count) for count, name in
            re.findall(r"^\s+(\d+)\s+(\S+)\s*$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("width, depth, luts", [
    (32, SPRAM_DEPTH, 15),          # two wide: 14 address multiplexers (write or read), select
    (16, 2 * SPRAM_DEPTH, 33),      # two deep: 15 address multiplexers, 2 chip selects, and
])                                  # 16 read data multiplexers behind the row register
def test_yosys_maps_64_kb_onto_two_sprams(tmp_path, width, depth, luts):
    cells = _synth_stat(SpramMemory(width=width, depth=depth), tmp_path)
    assert cells["SB_SPRAM256KA"] == 2
    assert not any(name.startswith("SB_RAM40") for name in cells)     # no block RAM
    assert cells["SB_LUT4"] == luts


def test_bad_parameters_and_platforms():
    with pytest.raises(ValueError, match="width must be a positive integer, not 0"):
        SpramMemory(width=0, depth=16)
    with pytest.raises(ValueError, match="depth must be a positive integer, not True"):
        SpramMemory(width=8, depth=True)
    assert has_spram(ICEBreakerPlatform())
    assert not has_spram(ICEStickPlatform()) and not has_spram(None)
    shaped = SpramMemory(width=20, depth=20000)
    assert (shaped.width, shaped.depth, shaped.blocks) == (20, 20000, (2, 2))
    assert "SB_SPRAM256KA" in verilog.convert(shaped, platform=ICEBreakerPlatform())
    with pytest.raises(ValueError, match="SB_SPRAM256KA exists only on iCE40 UltraPlus "
                                         "devices, not iCE40HX1K"):
        verilog.convert(SpramMemory(width=16, depth=16), platform=ICEStickPlatform())
    with pytest.raises(ValueError, match=r"A 48 x 32768 memory needs 6 SB_SPRAM256KA, the "
                                         r"iCE40 UltraPlus has 4"):
        verilog.convert(SpramMemory(width=48, depth=2 * SPRAM_DEPTH),
                        platform=ICEBreakerPlatform())
    for name in spram.__all__:
        assert getattr(spram, name) is not None


def _bench_spram_timing():
    path = Path(__file__).resolve().parent.parent / "bench" / "bench_spram_timing.py"
    spec = importlib.util.spec_from_file_location("bench_spram_timing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_icebreaker_cnn_presets_act_and_wgt_placed_on_the_up5k(tmp_path):
    # bench/bench_spram_timing.py: the memory between registers on other clocks, so that
    # nextpnr reports its address and read paths alone
    preset = get_preset("icebreaker-cnn")
    config = preset.config
    period_ns = 1e3 / preset.clock_mhz
    shapes = {"act": (8 * config.act_entry_bytes, config.act_depth),
              "wgt": (8 * config.weight_entry_bytes, config.weight_depth)}
    assert shapes == {"act": (32, SPRAM_DEPTH), "wgt": (16, 2 * SPRAM_DEPTH)}
    bench = _bench_spram_timing()
    placed = {}
    for name, (width, depth) in shapes.items():
        (tmp_path / name).mkdir()
        placed[name] = bench.measure(width, depth, tmp_path / name)
    assert placed["act"]["spram"] + placed["wgt"]["spram"] == spram.SPRAM_BLOCKS
    assert (placed["act"]["lut4"], placed["wgt"]["lut4"]) == (15, 33)
    for row in placed.values():
        # half the preset's period at most: the rest is for the logic around the memory
        assert 0 < row["address_path_ns"] < period_ns / 2
        assert 0 < row["read_path_ns"] < period_ns / 2
