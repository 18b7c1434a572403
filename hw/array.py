"""The outer-product MAC array: ``rows x cols`` multiply-accumulates of signed operands.

Operands are ``config.input_bits`` (activations) and ``config.weight_bits`` (weights) wide, each
product ``input_bits + weight_bits`` bits, the accumulators and their shadow ``config.acc_bits``
(int8 x int8 into int32 at the default configuration; 4, 8 or 16-bit operands, 32 or 48-bit
accumulators, see :class:`tessera.spec.AcceleratorConfig`).

One *step* broadcasts an activation per row and a weight per column to every MAC,
``acc[r][c] += a[r] * w[c]`` (docs/architecture.md explains why the array is not systolic). A
step presented on the inputs in cycle *t* is registered at the end of *t*, multiplied into a
product register at the end of *t + 1* and accumulated at the end of *t + 2*:
:attr:`MacArray.latency` is 3 from the operands to the updated accumulators being visible. The
operand broadcast (a weight to every row, an activation to every column, across the die on a big
array) and the multiply share one cycle, the accumulator's carry chain has the next one to itself.

A step with ``clear`` starts from its product instead of adding to the accumulators. It is built
as a synchronous reset of the accumulators in the cycle the step is multiplied, so that each
accumulator stays a plain ``acc <= acc + p`` (a ``Mux(clear, 0, acc)`` in front of the adder
costs 32 LUTs per MAC: measured with YoWASP ``synth_ice40 -dsp`` on the unpipelined array at 2x4,
230 SB_LUT4 + 8 SB_MAC16 with the reset against 486 SB_LUT4 + 8 SB_MAC16 with the multiplexer).
Neither Yosys flow packs the product register into the DSP (ECP5 MULT18X18D output register,
iCE40 SB_MAC16 pipeline register): in this generic array it is fabric flip-flops, and an
inferred SB_MAC16 holds only the multiplier, the adder being LUTs (whole iCEBreaker 2x4 build:
5886 ICESTORM_LC). Board builds therefore instantiate the blocks by hand with the same cycle
behaviour: on an iCE40 platform :mod:`tessera.hw.mac_ice40` keeps the operand, product and
32-bit accumulator registers inside each SB_MAC16 and clears by loading zero (``OLOAD``) in the
cycle this array resets (5886 -> 5373 ICESTORM_LC with the executor's narrower response vector);
on an ECP5 platform see :mod:`tessera.hw.mac_ecp5`. The price is one rule: a ``clear`` step must
not be presented in the cycle right after another step (the GEMM engine always leaves a gap
between GEMMs, so it never does).

Next to the accumulators sits a *shadow* copy that the drain empties while the array already
accumulates the next tile: ``shadow_load`` copies every accumulator in one cycle. The shadow is
read through a single output, ``head`` (``shadow[0][0]``), and moved with two shifts so that no
``rows*cols``-way ``acc_bits``-wide multiplexer is needed: ``shift_row`` moves column 0 up by one
row, and ``shift_col`` moves every column left by one (column ``c`` takes column ``c + 1``).
Draining ``m_rows`` rows of a column is ``m_rows - 1`` row shifts followed by one column shift.
"""

from amaranth import Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .mac_ecp5 import elaborate_mac_array, is_ecp5
from .mac_ice40 import elaborate_ice40_array, ice40_macs_fit, is_ice40
from .shadow import shifting_shadow

__all__ = ["MacArray"]


class MacArray(wiring.Component):
    """``rows x cols`` MACs with ``acc_bits`` accumulators and a shifting shadow copy.

    Parameters
    ----------
    config : AcceleratorConfig
        Gives ``rows``, ``cols``, ``input_bits``, ``weight_bits`` and ``acc_bits``.

    Members
    -------
    a : In(ArrayLayout(signed(input_bits), rows))
        Activation of each row for the step.
    w : In(ArrayLayout(signed(weight_bits), cols))
        Weight of each column for the step.
    step : In(1)
        ``a`` and ``w`` form a step this cycle; it is accumulated ``latency - 1`` cycles later.
    clear : In(1)
        With ``step``: the step starts from its product (the accumulators restart).
    shadow_load : In(1)
        Copy every accumulator into the shadow at the end of this cycle.
    shift_row : In(1)
        Shift shadow column 0 up by one row (``shadow[r][0] <= shadow[r+1][0]``).
    shift_col : In(1)
        Shift the shadow left by one column (``shadow[r][c] <= shadow[r][c+1]``); takes
        precedence over ``shift_row``. ``shadow_load`` takes precedence over both.
    head : Out(signed(acc_bits))
        ``shadow[0][0]``.
    heads : Out(ArrayLayout(signed(acc_bits), drain_lanes))
        Only with ``config.drain_lanes > 1``: ``shadow[0 ... drain_lanes-1][0]``; ``shift_row``
        then moves column 0 up by ``drain_lanes`` rows (the drain takes that many at once).
    maximum : In(1)
        Only with ``config.cnn`` (ISA version 3's max pool): with ``step``, each accumulator
        keeps the maximum of its row's activations instead of the sum of products (a
        ``clear`` step starts from its activation); the weights are not used. The iCE40 and
        ECP5 arrays keep the maxima of column 0 only (a max pool's one column) in fabric
        registers beside their blocks (hw/max_column.py).
    """

    #: Cycles from a step on the inputs to the updated accumulators (and a ``shadow_load`` in
    #: that cycle capturing them).
    latency = 3

    def __init__(self, config):
        self._config = config
        super().__init__({
            "a": In(data.ArrayLayout(signed(config.input_bits), config.rows)),
            "w": In(data.ArrayLayout(signed(config.weight_bits), config.cols)),
            "step": In(1),
            "clear": In(1),
            "shadow_load": In(1),
            "shift_row": In(1),
            "shift_col": In(1),
            "head": Out(signed(config.acc_bits)),
            **({"maximum": In(1)} if config.cnn else {}),
            **({"heads": Out(data.ArrayLayout(signed(config.acc_bits), config.drain_lanes))}
               if config.drain_lanes > 1 else {}),
        })

    @property
    def config(self):
        """The :class:`~tessera.spec.AcceleratorConfig` this array was elaborated for."""
        return self._config

    def elaborate(self, platform):
        if is_ecp5(platform):
            # Same cycle behaviour on hand-instantiated MULT18X18D blocks (hw/mac_ecp5.py).
            return elaborate_mac_array(self, platform)
        if is_ice40(platform) and ice40_macs_fit(self._config):
            # Operands, products and accumulators inside SB_MAC16 blocks (hw/mac_ice40.py).
            return elaborate_ice40_array(self, platform)
        m = Module()
        rows, cols = self._config.rows, self._config.cols
        product_bits = self._config.input_bits + self._config.weight_bits
        acc_bits = self._config.acc_bits

        # Operand register stage: shared by a row (a) or a column (w) of MACs.
        a = Signal.like(self.a)
        w = Signal.like(self.w)
        step = Signal()
        m.d.sync += [a.eq(self.a), w.eq(self.w), step.eq(self.step)]

        # Product register stage: each MAC's a*w is registered and accumulated in the next
        # cycle, so the multiply and the accumulator's carry chain are not in one cycle. (It
        # keeps the domain reset although a product only reaches an accumulator with
        # `product_step`: without it, Yosys 0.70's ABC9 crashed on the ULX3S-85F build.)
        product = [[Signal(signed(product_bits), name=f"p_{r}_{c}") for c in range(cols)]
                   for r in range(rows)]
        product_step = Signal()
        for r in range(rows):
            for c in range(cols):
                m.d.sync += product[r][c].eq(a[r] * w[c])
        m.d.sync += product_step.eq(step)

        acc = [[Signal(signed(acc_bits), name=f"acc_{r}_{c}") for c in range(cols)]
               for r in range(rows)]

        # Each accumulator is `acc <= acc + product` in its own module; the clear is a
        # synchronous reset of that module in the cycle the clearing step's product is computed
        # (registered from the step's `clear`, so no combinational path reaches the resets).
        restart = Signal()
        m.d.sync += restart.eq(self.step & self.clear)
        if self._config.cnn:
            # Max pool (ISA version 3): the row's activation, a cycle late beside the products,
            # is compared and selected instead of added; the clearing step takes it whole.
            maximum, first = Signal(), Signal()
            a_late = Signal.like(a)
            m.d.sync += [maximum.eq(self.maximum), a_late.eq(a),
                         first.eq(self.step & self.clear)]
            first_late, maximum_late = Signal(), Signal()
            m.d.sync += [first_late.eq(first), maximum_late.eq(maximum)]
        for r in range(rows):
            for c in range(cols):
                mac = Module()
                with mac.If(product_step):
                    if self._config.cnn:
                        keep = Mux(first_late | (a_late[r] > acc[r][c]), a_late[r], acc[r][c])
                        mac.d.sync += acc[r][c].eq(
                            Mux(maximum_late, keep, acc[r][c] + product[r][c]))
                    else:
                        mac.d.sync += acc[r][c].eq(acc[r][c] + product[r][c])
                m.submodules[f"mac_{r}_{c}"] = ResetInserter(restart)(mac)

        shifting_shadow(m, self, acc)
        return m
