"""The MAC array on ECP5: hand-instantiated MULT18X18D with their registers, same cycle behaviour.

Yosys 0.70's ``synth_ecp5`` maps ``a * w`` to a MULT18X18D but never packs the block's input or
output registers, and the block RAM holding the operands has a 5.6 ns clock-to-output on the
LFE5U-85F (speed 6): on the ULX3S-85F the operand broadcast across the die, the multiplier and
the route to a fabric product register shared one cycle (18.4 ns). :func:`elaborate_mac_array`
builds :class:`~tessera.hw.array.MacArray` for an ECP5 platform as a four-stage pipeline in
which no combinational path holds more than one of these:

==========  ==============================================================================
end of      registered
==========  ==========================================================================
*t*         the step's operands, in fabric next to the block RAM outputs (``a_q``, ``w_q``)
*t + 1*     the operands again, in each MULT18X18D's A/B input registers (the broadcast)
*t + 2*     the product, in each MULT18X18D's output register (zero when no step)
*t + 3*     the accumulators, ``acc <= acc + p``
==========  ==========================================================================

That is one stage more than the generic array, whose accumulators hold a step at the end of
*t + 2*. The difference is invisible at the ports: the shadow copies the accumulators in the
cycle *after* a ``shadow_load``, when they hold exactly what the generic array's accumulators
hold in the cycle of the load (a ``shadow_load`` in cycle *t + 3* captures the step of cycle *t*,
as :attr:`MacArray.latency` promises), and in that cycle ``head`` and the shifts read the
accumulators instead of the shadow, so the copy looks made at the load. A clearing step restarts
the accumulators one cycle later than in the generic array, so the rule "no ``clear`` step right
after another step" is the same. ``tests/test_hw_mac_ecp5.py`` runs this array and the generic
one side by side and compares ``head`` in every cycle.

Operands are signed, ``input_bits`` and ``weight_bits`` wide (at most 18, the block's port
width) and sign-extended with ``SIGNEDA``/``SIGNEDB`` high. Yosys ships only a black box of
MULT18X18D; :data:`MULT18X18D_SIM_MODEL` is a behavioural Verilog model of the subset of the
primitive used here (18x18 signed multiply; input, pipeline and output registers on ``CLK0``
with a clock enable and a synchronous reset each), written from Lattice's ECP5 sysDSP usage
guide (FPGA-TN-02205), for simulating the generated array.

A ``cnn`` configuration may need more multipliers than its part has: ``ulx3s-85f-cnn``'s 128
MACs and its 8 drain lanes' tflite requant units (4 MULT18X18D each) are 160 of the
LFE5U-85F's 156. Its last :func:`fabric_rows` row lanes then multiply in logic instead (at
16x8 one, its 8 MACs: 152 blocks, 4 free), in the blocks' two cycles (the products by the
weight's two halves at *t + 1*, their sum at *t + 2*), so the array behaves the same. Two 8x8
products cannot share one MULT18X18D exactly: its ports are 18 bits, so two operands packed
into one are at most 9 bits apart, and each 8x8 product is 16 bits wide; the open tools do not
place the block's 9x9 mode (MULT9X9D).
"""

from amaranth import ClockSignal, Instance, Module, Mux, Signal, Value, signed

from .max_column import max_column

__all__ = ["MULT18X18D_SIM_MODEL", "elaborate_mac_array", "fabric_rows", "is_ecp5",
           "registered_product", "requant_multipliers"]

#: Port width of the MULT18X18D operands.
PORT_BITS = 18


def is_ecp5(platform):
    """Return whether ``platform`` is an Amaranth platform for a Lattice ECP5 device.

    ``None`` (simulation, Verilog generation) is not.
    """
    return platform is not None and getattr(platform, "family", None) == "ecp5"


#: MULT18X18D of one requant unit (hw/requant_tflite.py, hw/requant_onnx.py: four 18x18
#: partial products) when it takes one cycle per element.
REQUANT_MULTIPLIERS = 4

#: Multipliers left free when choosing :func:`fabric_rows` (any product Yosys still maps to a
#: block, such as an 8x8 one outside the array, which the build's ``booth`` pass leaves alone).
SPARE_MULTIPLIERS = 2


def requant_multipliers(config) -> int:
    """Return the MULT18X18D that ``config``'s requant units take beside the MAC array.

    Every post-processor (one per drain lane) has one unit per requant mode, four blocks each
    when it takes one cycle per element (the iterative ones, ``requant_cycles > 1``, are logic
    on a ``cnn`` configuration, whose build turns every other product into logic); the
    ``ADD`` borrows the drain lanes' tflite units (hw/add.py).
    """
    units = len(config.requant_modes) if config.requant_cycles == 1 else 0
    return REQUANT_MULTIPLIERS * units * (config.drain_lanes if config.cnn else 1)


def fabric_rows(config, multipliers) -> int:
    """Return how many row lanes of ``config``'s array multiply in logic on a part with
    ``multipliers`` MULT18X18D.

    Only a ``cnn`` configuration (dense ones are sized to their parts and stay unchanged): the
    fewest last rows whose MACs leave the requant units their blocks and
    :data:`SPARE_MULTIPLIERS` free.
    """
    if not config.cnn:
        return 0
    excess = (config.rows * config.cols + requant_multipliers(config) + SPARE_MULTIPLIERS
              - multipliers)
    return min(config.rows, max(0, -(-excess // config.cols)))


def _part_multipliers(platform):
    """Return the MULT18X18D of ``platform``'s device (``tessera.hw.boards``), ``None`` if no
    board has that device."""
    from .boards import BOARDS
    for board in BOARDS.values():
        if board.family == "ecp5" and board.device == getattr(platform, "device", None):
            return board.capacity["dsp"]
    return None


def _mult18x18d(a18, b18, product, zero, ce=1, *, input_registers=True):
    """Return a MULT18X18D computing ``product <= a18 * b18`` two clocks later, 0 when ``zero``.

    A and B go through the input registers (``CE0 = ce``, never reset), or straight into the
    multiplier without ``input_registers`` (one clock), the product through the output register
    (also enabled by ``ce``), synchronously reset by ``RST1 = zero`` in the cycle it is loaded.
    """
    ports = {f"i_A{i}": a18[i] for i in range(PORT_BITS)}
    ports.update({f"i_B{i}": b18[i] for i in range(PORT_BITS)})
    ports.update({f"i_C{i}": 0 for i in range(PORT_BITS)})
    ports.update({f"o_P{i}": product[i] for i in range(2 * PORT_BITS)})
    input_clock = "CLK0" if input_registers else "NONE"
    return Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK=input_clock, p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
        p_REG_INPUTB_CLK=input_clock, p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST1",
        p_GSR="DISABLED", p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
        p_SOURCEB_MODE="B_SHIFT", p_CAS_MATCH_REG="FALSE",
        i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
        i_CLK0=ClockSignal("sync"), i_CE0=ce, i_RST0=0, i_RST1=zero,
        **ports)


def registered_product(m, name, a, b, en):
    """Return ``a * b`` registered under ``en`` in a MULT18X18D's output register.

    The same as ``p <= a * b`` (in a cycle with ``en``) with a fabric register, returning
    ``p``: no route out of the block shares a cycle with the multiply. Give it registered
    operands: the route into the block then is the only other part of the cycle (on the
    ULX3S-85F feeding the block's input registers through a normaliser instead made a 14.9 ns
    path, 4.9 ns of it the route into the block). ``a`` and ``b`` are values of at most 18
    bits signed or 17 bits unsigned (extended to the signed 18-bit ports); the result has
    ``len(a) + len(b)`` bits, signed if either operand is.
    """
    a, b = Value.cast(a), Value.cast(b)
    operands = []
    for label, value in (("a", a), ("b", b)):
        shape = value.shape()
        limit = PORT_BITS if shape.signed else PORT_BITS - 1
        if shape.width > limit:
            raise ValueError(f"{name}: operand {label} of {shape.width} "
                             f"{'signed' if shape.signed else 'unsigned'} bits does not fit "
                             f"a MULT18X18D port ({PORT_BITS} bits signed, "
                             f"{PORT_BITS - 1} unsigned); split the product")
        port = Signal(signed(PORT_BITS), name=f"{name}_{label}18")
        m.d.comb += port.eq(value)   # sign- or zero-extended to the port
        operands.append(port)
    width = len(a) + len(b)
    full = Signal(2 * PORT_BITS, name=f"{name}_p36")
    m.submodules[f"{name}_mult"] = _mult18x18d(*operands, full, 0, ce=en,
                                               input_registers=False)
    result = Signal(signed(width) if a.shape().signed or b.shape().signed else width, name=name)
    m.d.comb += result.eq(full[:width])
    return result


def elaborate_mac_array(array, platform):
    """Return the :class:`~tessera.hw.array.MacArray` ``array`` built on MULT18X18D.

    Drives ``array``'s own ports (the caller's ``elaborate`` returns this module), with the
    pipeline of the module docstring.
    """
    config = array.config
    rows, cols = config.rows, config.cols
    input_bits, weight_bits = config.input_bits, config.weight_bits
    for name, bits in (("input_bits", input_bits), ("weight_bits", weight_bits)):
        if bits > PORT_BITS:
            raise ValueError(f"{name}={bits} does not fit a MULT18X18D port ({PORT_BITS} "
                             f"bits); use at most {PORT_BITS}-bit operands on ECP5")
    product_bits = input_bits + weight_bits
    acc_bits = array.head.shape().width
    m = Module()

    # Stage 1: operands registered once, next to the RAM outputs; sign-extended to the port.
    a_q = [Signal(signed(PORT_BITS), name=f"a_q_{r}") for r in range(rows)]
    w_q = [Signal(signed(PORT_BITS), name=f"w_q_{c}") for c in range(cols)]
    m.d.sync += [a_q[r].eq(array.a[r]) for r in range(rows)]
    m.d.sync += [w_q[c].eq(array.w[c]) for c in range(cols)]
    # The step and its restart follow the operands; `zero` clears the output registers in the
    # cycle a product is loaded unless that product belongs to a step.
    step_q, step_in_dsp, restart_q, restart = Signal(), Signal(), Signal(), Signal()
    m.d.sync += [
        step_q.eq(array.step), step_in_dsp.eq(step_q),
        restart_q.eq(array.step & array.clear), restart.eq(restart_q),
    ]

    # Stages 2 and 3: the broadcast into the input registers and the multiply, in the blocks.
    product = [[Signal(2 * PORT_BITS, name=f"p_{r}_{c}") for c in range(cols)]
               for r in range(rows)]
    multipliers = _part_multipliers(platform)
    in_logic = fabric_rows(config, multipliers) if multipliers is not None else 0
    for r in range(rows - in_logic):
        for c in range(cols):
            m.submodules[f"mult_{r}_{c}"] = _mult18x18d(a_q[r], w_q[c], product[r][c],
                                                        ~step_in_dsp)
    if in_logic:
        _fabric_products(m, a_q, w_q, product, step_q, config, range(rows - in_logic, rows))

    # Stage 4: `acc <= acc + p` (p is 0 without a step); the restart is a synchronous reset
    # of each accumulator in the cycle before its clearing step's product arrives. The
    # accumulators are not reset with the domain: every GEMM starts with a clearing step, and
    # `restart` alone on their LSR inputs keeps a LUT (restart | domain reset) from driving the
    # rows x cols x acc_bits resets across the die (4,096 on the ULX3S-85F's 16x8: a LUT
    # output placed anywhere is two die-wide hops from the reset to the last accumulator).
    acc = [[Signal(signed(acc_bits), name=f"acc_{r}_{c}", reset_less=True)
            for c in range(cols)] for r in range(rows)]
    for r in range(rows):
        for c in range(cols):
            with m.If(restart):
                m.d.sync += acc[r][c].eq(0)
            with m.Else():
                m.d.sync += acc[r][c].eq(acc[r][c] + product[r][c][:product_bits].as_signed())

    # The shadow copies the accumulators in the cycle after `shadow_load` (`loading`), when
    # they hold what the generic array's hold in the cycle of the load. In that cycle `head`
    # and the shifts read the accumulators instead (`view`), so the copy looks made at the load
    # (a load in the loading cycle makes the next one a loading cycle: what the shadow gets then
    # is never read).
    if config.cnn:
        # the max pool's maxima beside the blocks, a cycle behind as these accumulators
        acc = max_column(m, array, acc, lag=1)
    lanes = array.config.drain_lanes
    loading = Signal()
    m.d.sync += loading.eq(array.shadow_load)
    shadow = [[Signal(signed(acc_bits), name=f"shadow_{r}_{c}") for c in range(cols)]
              for r in range(rows)]
    view = [[Signal(signed(acc_bits), name=f"view_{r}_{c}") for c in range(cols)]
            for r in range(rows)]
    for r in range(rows):
        for c in range(cols):
            m.d.comb += view[r][c].eq(Mux(loading, acc[r][c], shadow[r][c]))
            with m.If(array.shift_col):
                m.d.sync += shadow[r][c].eq(view[r][min(c + 1, cols - 1)])
            with m.Elif(array.shift_row & (c == 0) & (r + lanes < rows)):
                m.d.sync += shadow[r][c].eq(view[min(r + lanes, rows - 1)][c])
            with m.Else():
                m.d.sync += shadow[r][c].eq(view[r][c])
    m.d.comb += array.head.eq(view[0][0])
    if lanes > 1:
        # the drain takes `lanes` rows at once (MacArray `heads`)
        m.d.comb += [array.heads[i].eq(view[i][0]) for i in range(lanes)]
    return m


def _fabric_products(m, a_q, w_q, product, step_q, config, rows):
    """Drive ``product`` of ``rows`` from logic, registered as in the blocks.

    Two stages in the blocks' two cycles: at *t + 1* the operand times the low and the high
    half of the weight (two ``input_bits x weight_bits/2`` products, zero without a step; on
    the ECP5 about four LUT levels and a short carry chain), at *t + 2* their sum. The build's
    ``booth`` pass (``hw/build.py``) makes them logic: it leaves only ``input_bits x
    weight_bits`` products, the array's, to the DSP mapping.
    """
    a_bits, w_bits = config.input_bits, config.weight_bits
    half = (w_bits + 1) // 2
    for r in rows:
        a = a_q[r][:a_bits].as_signed()
        for c in range(config.cols):
            low = Signal(signed(a_bits + half + 1), name=f"pl_{r}_{c}")
            high = Signal(signed(a_bits + w_bits - half), name=f"ph_{r}_{c}")
            m.d.sync += [
                low.eq(Mux(step_q, a * w_q[c][:half], 0)),
                high.eq(Mux(step_q, a * w_q[c][half:w_bits].as_signed(), 0)),
                product[r][c].eq(low + (high << half)),
            ]


def _model_ports():
    inputs = ([f"{p}{i}" for p in "ABC" for i in range(PORT_BITS)]
              + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"]
              + [f"{p}{i}" for p in ("CLK", "CE", "RST") for i in range(4)])
    outputs = [f"P{i}" for i in range(2 * PORT_BITS)]
    return inputs, outputs


def _sim_model():
    inputs, outputs = _model_ports()
    a = ", ".join(f"A{i}" for i in reversed(range(PORT_BITS)))
    b = ", ".join(f"B{i}" for i in reversed(range(PORT_BITS)))
    p = ", ".join(f"P{i}" for i in reversed(range(2 * PORT_BITS)))
    return f"""\
// Behavioural model of the Lattice ECP5 MULT18X18D for simulation (tessera.hw.mac_ecp5): 18x18
// multiply, signed per SIGNEDA/SIGNEDB; input A/B, pipeline and output registers each either
// absent ("NONE") or clocked by CLK0, with the clock enable and synchronous reset named by
// their _CE/_RST parameters. Other settings stop the simulation.
module MULT18X18D({", ".join(inputs + outputs)});
    input {", ".join(inputs)};
    output {", ".join(outputs)};
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";

    wire [3:0] ce = {{CE3, CE2, CE1, CE0}};
    wire [3:0] rst = {{RST3, RST2, RST1, RST0}};
    function integer index;  // "CE2" -> 2, "RST1" -> 1
        input [8*4-1:0] name;
        index = name[7:0] - "0";
    endfunction
    function clocked;
        input [8*4-1:0] name;
        clocked = name != "NONE";
    endfunction

    initial begin
        if ((clocked(REG_INPUTA_CLK) && REG_INPUTA_CLK != "CLK0")
                || (clocked(REG_INPUTB_CLK) && REG_INPUTB_CLK != "CLK0")
                || (clocked(REG_PIPELINE_CLK) && REG_PIPELINE_CLK != "CLK0")
                || (clocked(REG_OUTPUT_CLK) && REG_OUTPUT_CLK != "CLK0")
                || RESETMODE != "SYNC" || MULT_BYPASS != "DISABLED") begin
            $display("MULT18X18D model: unsupported configuration");
            $finish;
        end
    end

    wire [17:0] a_in = {{{a}}};
    wire [17:0] b_in = {{{b}}};
    reg [17:0] a_reg = 0, b_reg = 0;
    reg [35:0] pipe_reg = 0, out_reg = 0;
    always @(posedge CLK0) begin
        if (rst[index(REG_INPUTA_RST)]) a_reg <= 0;
        else if (ce[index(REG_INPUTA_CE)]) a_reg <= a_in;
        if (rst[index(REG_INPUTB_RST)]) b_reg <= 0;
        else if (ce[index(REG_INPUTB_CE)]) b_reg <= b_in;
    end
    wire [17:0] a = clocked(REG_INPUTA_CLK) ? a_reg : a_in;
    wire [17:0] b = clocked(REG_INPUTB_CLK) ? b_reg : b_in;
    wire signed [18:0] a_ext = {{SIGNEDA & a[17], a}};
    wire signed [18:0] b_ext = {{SIGNEDB & b[17], b}};
    wire signed [37:0] full = a_ext * b_ext;
    wire [35:0] product = full[35:0];
    always @(posedge CLK0) begin
        if (rst[index(REG_PIPELINE_RST)]) pipe_reg <= 0;
        else if (ce[index(REG_PIPELINE_CE)]) pipe_reg <= product;
    end
    wire [35:0] piped = clocked(REG_PIPELINE_CLK) ? pipe_reg : product;
    always @(posedge CLK0) begin
        if (rst[index(REG_OUTPUT_RST)]) out_reg <= 0;
        else if (ce[index(REG_OUTPUT_CE)]) out_reg <= piped;
    end
    assign {{{p}}} = clocked(REG_OUTPUT_CLK) ? out_reg : piped;
endmodule
"""


#: Behavioural Verilog model of MULT18X18D (see the module docstring).
MULT18X18D_SIM_MODEL = _sim_model()
