"""The post-processor: one accumulator in, one ``output_bits`` activation out, every cycle.

Computes ``tessera.numerics.postprocess`` of ``wrap(acc + bias)`` (two's complement at
``config.acc_bits``; docs/isa.md, "Post-processing (drain) of one accumulator") at
``config.output_bits`` as a stall-able pipeline:

====== ==================================================================================
stage  work
====== ==================================================================================
0      ``a = wrap(acc + bias)`` at ``acc_bits``; capture the per-element parameters
1..6   requant, mode "onnx" (:class:`OnnxRequant`) and/or "tflite" (:class:`TfliteRequant`)
       in parallel, then the mode select; result saturated to int16 (int24 for 16-bit
       outputs, :func:`~tessera.hw.requant_onnx.requant_bits`)
7      ``+ zero_point`` and the two clamp comparisons (:class:`Activation`)
8      clamp, optional LUT (:class:`Activation`)
====== ==================================================================================

Flow control: the whole pipeline advances in a cycle when its output register is empty or
being taken (``~o.valid | o.ready``), and holds otherwise. ``i.ready`` is that advance signal,
so the producer may present ``valid`` whenever it has data (lib.stream rules: ``o.valid`` never
depends on ``o.ready`` combinationally, only ``i.ready`` does). With ``o.ready`` held high the
output for an input accepted in cycle *t* is valid in cycle *t* + :attr:`PostProcessor.latency`.

With ``config.requant_cycles = c > 1`` the product of the mode built is iterative (onnx: always;
tflite: ``cnn`` configurations): while it works on an element (``c - 1`` cycles per element) the
whole pipeline holds (``i.ready`` low), so a stream of elements costs exactly ``c`` cycles each
and an element's result still appears ``latency`` advancing cycles after its transfer.

Lending the requant to an ``ADD`` (``config.cnn`` with mode "tflite"): an ``ADD`` runs only while
the drain unit is free (hw/add_stream.py), so its three requant passes per element use this
pipeline's tflite unit (hw/add.py) through :attr:`PostProcessor.shared`
(:class:`SharedRequantSignature`) instead of a unit of their own: a pass presented there enters
stage 0 in place of an element of ``i`` (which then carries none), takes part in the stalls of
an iterative product, and is never sent to ``o``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.numerics.modes import get_mode
from tessera.spec import AcceleratorConfig, isa

from .activation import Activation, clamp_bounds
from .layouts import INSN_LAYOUTS, PARAM_ENTRY, TAIL_FIELD
from .mac_ice40 import is_ice40
from .ram import block_ram, registered_read
from .requant_onnx import OnnxRequant, requant_bits
from .requant_tflite import TfliteRequant

__all__ = ["PostProcessor", "POSTPROC_IN", "POSTPROC_OUT", "TAG_BITS", "postproc_layouts",
           "SharedRequantSignature", "shares_requant"]

#: Width of the opaque tag passed through with each element.
TAG_BITS = 8


def _post_fields(config):
    # The post state fields of the POST instruction (mode, lut, zero_point, lo, hi), without
    # the opcode and padding; zero_point, lo and hi narrowed to the output width (the decoder
    # refuses values outside the output range).
    layout = INSN_LAYOUTS[isa.Opcode.POST]
    return {name: signed(config.output_bits) if name in ("zero_point", "lo", "hi") else shape
            for name, shape in layout.members.items()
            if name != "opcode" and not name.startswith("_") and name != TAIL_FIELD}


def postproc_layouts(config) -> tuple:
    """Return ``(in_layout, out_layout)``, the payloads of a PostProcessor for ``config``.

    In: the accumulator (``signed(config.acc_bits)``), its channel's PARAM entry (bias,
    multiplier, shift), the post state captured at GEMM issue, and the pass-through tag/last.
    Out: the result (``signed(config.output_bits)``), tag and last.
    """
    layout_in = data.StructLayout({
        "acc": signed(config.acc_bits),
        **PARAM_ENTRY.members,
        **_post_fields(config),
        "tag": unsigned(TAG_BITS),
        "last": unsigned(1),
    })
    layout_out = data.StructLayout({
        "value": signed(config.output_bits),
        "tag": unsigned(TAG_BITS),
        "last": unsigned(1),
    })
    return layout_in, layout_out


def shares_requant(config) -> bool:
    """Return whether ``config``'s PostProcessor lends its tflite requant to ``ADD``."""
    return config.cnn and "tflite" in config.requant_modes


class SharedRequantSignature(wiring.Signature):
    """The PostProcessor's tflite requant lent to an ``ADD``, from the borrower's side.

    A pass presented with ``valid`` is taken in a cycle with ``advance`` (the pipeline's
    ``i.ready``), enters stage 0 as ``wrap(acc + param.bias)`` with ``param``'s multiplier and
    shift, and moves one stage per ``advance``: its unsaturated result is on ``rounded`` after
    ``1 + TfliteRequant.rounded_latency`` advances counted from the one that took it, the
    saturated one on ``result`` after one more.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    sel : Out(1)
        An ``ADD`` has the unit: stage 0 takes ``acc`` and ``param`` instead of the drain's
        element (a register, high around every pass: the drain sends nothing meanwhile).
    valid : Out(1)
        A pass is presented.
    acc : Out(signed(acc_bits))
    param : Out(PARAM_ENTRY)
    advance : In(1)
    rounded : In(signed(32))
    result : In(signed(requant_bits(output_bits)))
    """

    def __init__(self, config):
        super().__init__({
            "sel": Out(1),
            "valid": Out(1),
            "acc": Out(signed(config.acc_bits)),
            "param": Out(PARAM_ENTRY),
            "advance": In(1),
            "rounded": In(signed(32)),
            "result": In(signed(requant_bits(config.output_bits))),
        })


#: Payloads of :attr:`PostProcessor.i` and :attr:`PostProcessor.o` with 8-bit operands and
#: 32-bit accumulators (``postproc_layouts`` gives those of any configuration).
POSTPROC_IN, POSTPROC_OUT = postproc_layouts(AcceleratorConfig())


class PostProcessor(wiring.Component):
    """Pipelined requantization and activation of one accumulator per cycle.

    Parameters
    ----------
    config : tessera.AcceleratorConfig
        Builds the requant modes in ``config.requant_modes`` and the lookup table if
        ``config.lut``. An element whose ``mode`` was not built gets the result of a built mode
        (the executor never issues one), and ``lut`` is ignored without a table.
    delay_ram : bool or None, optional
        Carry each element's post state (mode, zero point, clamp bounds, LUT flag, tag, last)
        beside the requant pipeline in a small block RAM written as the element enters and
        read :attr:`latency` - 2 advances later, instead of in a chain of registers per stage
        (~330 flip-flops with 8-bit outputs: 6 % of an iCE40UP5K, whose block RAMs are not all
        used). ``None``: on iCE40 platforms only (an ECP5 has flip-flops to spare, and a block
        RAM's clock-to-output delay before the activation stage would cost it at 100 MHz).

    Members
    -------
    i : In(stream.Signature(postproc_layouts(config)[0]))
        Elements to post-process (:data:`POSTPROC_IN` with 8-bit operands).
    o : Out(stream.Signature(postproc_layouts(config)[1]))
        Results in input order, with ``tag`` and ``last`` of their input (:data:`POSTPROC_OUT`
        with 8-bit operands).
    lut_wr_en : In(1)
        Write ``lut_wr_data`` to table entry ``lut_wr_addr`` (only if ``config.lut``).
    lut_wr_addr : In(8)
        Table index (``y + 128``).
    lut_wr_data : In(8)
        Entry value, int8 bits.
    shared : In(SharedRequantSignature(config))
        Only if :func:`shares_requant`: the tflite requant lent to an ``ADD``.
    """

    #: Cycles from a transfer on ``i`` to ``o.valid`` of its result when ``o.ready`` is held
    #: (with any ``requant_cycles``: the iterative multiplier's holds come on top).
    latency = 1 + OnnxRequant.latency + Activation.latency

    def __init__(self, config, *, delay_ram=None):
        if delay_ram is not None and not isinstance(delay_ram, bool):
            self._MustUse__silence = True
            raise TypeError(f"delay_ram must be None, False or True, not {delay_ram!r}")
        if not isinstance(config, AcceleratorConfig):
            self._MustUse__silence = True   # a rejected component is not an unused one
            raise TypeError(f"PostProcessor needs a tessera.AcceleratorConfig, "
                            f"not {type(config).__name__}")
        assert OnnxRequant.latency == TfliteRequant.latency
        self._config = config
        self._delay_ram = delay_ram
        layout_in, layout_out = postproc_layouts(config)
        members = {
            "i": In(stream.Signature(layout_in)),
            "o": Out(stream.Signature(layout_out)),
        }
        if config.lut:
            members.update(lut_wr_en=In(1), lut_wr_addr=In(8), lut_wr_data=In(8))
        if shares_requant(config):
            members.update(shared=In(SharedRequantSignature(config)))
        super().__init__(members)

    @property
    def config(self) -> AcceleratorConfig:
        """The configuration this post-processor was built for."""
        return self._config

    def _onnx_unit(self, m, config, *, advance, valid, hold, a, stage0, side_valid):
        m.submodules.onnx = onnx = OnnxRequant(config.requant_cycles, acc_bits=config.acc_bits,
                                               result_bits=requant_bits(config.output_bits))
        m.d.comb += [
            onnx.en.eq(advance),
            onnx.valid.eq(valid[0]),
            hold.eq(onnx.hold),
            onnx.a.eq(a),
            onnx.multiplier.eq(stage0.multiplier),
        ]
        return onnx.result

    def _tflite_unit(self, m, config, *, advance, valid, hold, a, stage0, side_valid):
        shared = shares_requant(config)
        if config.requant_cycles == 1 and not shared:
            m.submodules.tflite = tflite = TfliteRequant(
                result_bits=requant_bits(config.output_bits))
        else:
            m.submodules.tflite = tflite = TfliteRequant(
                config.requant_cycles, result_bits=requant_bits(config.output_bits),
                unsaturated=shared)
        m.d.comb += [
            tflite.en.eq(advance),
            tflite.a.eq(a),
            tflite.multiplier.eq(stage0.multiplier),
            tflite.shift.eq(stage0.shift),
        ]
        if config.requant_cycles > 1:
            # an ADD's pass in stage 0 is an element too (module docstring); an iterative
            # configuration builds one mode (AcceleratorConfig)
            m.d.comb += [tflite.valid.eq(valid[0] | side_valid), hold.eq(tflite.hold)]
        if shared:
            m.d.comb += [self.shared.rounded.eq(tflite.rounded),
                         self.shared.result.eq(tflite.result)]
        return tflite.result

    #: The hardware unit of each requant mode (``tessera.numerics.modes.MODES``), by name: a
    #: method adding it to the module and returning its result signal.
    _REQUANT_UNITS = {"onnx": _onnx_unit, "tflite": _tflite_unit}

    def elaborate(self, platform):
        m = Module()
        config = self._config
        requant_latency = self.latency - 1 - Activation.latency

        advance = Signal()
        hold = Signal()                  # the iterative multiplier needs this cycle
        valid = Signal(self.latency)
        m.d.comb += [
            advance.eq((~self.o.valid | self.o.ready) & ~hold),
            self.i.ready.eq(advance),
            self.o.valid.eq(valid[-1]),
        ]
        with m.If(advance):
            m.d.sync += valid.eq(Cat(self.i.valid, valid[:-1]))
        with m.Elif(self.o.ready):
            # Held by the iterative multiplier: the output register is still taken.
            m.d.sync += valid[-1].eq(0)

        def delayed(value, cycles, name):
            # A chain of enabled registers: `value` as it was `cycles` advances ago.
            for n in range(cycles):
                reg = Signal.like(value, name=f"{name}_d{n + 1}")
                with m.If(advance):
                    m.d.sync += reg.eq(value)
                value = reg
            return value

        delay_ram = is_ice40(platform) if self._delay_ram is None else self._delay_ram

        # ---- stage 0: a = wrap(acc + bias), parameters ----------------------------------
        p = self.i.payload
        if shares_requant(config):
            # an ADD's pass in place of the drain's element (module docstring)
            side = self.shared
            incoming = Signal(postproc_layouts(config)[0])
            m.d.comb += [incoming.eq(p), side.advance.eq(advance)]
            with m.If(side.sel):
                m.d.comb += [incoming.acc.eq(side.acc), incoming.bias.eq(side.param.bias),
                             incoming.multiplier.eq(side.param.multiplier),
                             incoming.shift.eq(side.param.shift)]
            p = incoming
            side_valid = Signal()        # an ADD's pass is in stage 0
            with m.If(advance):
                m.d.sync += side_valid.eq(side.valid)
        else:
            side_valid = Const(0)
        stage0 = Signal(postproc_layouts(config)[0])
        a = Signal(signed(config.acc_bits))
        with m.If(advance):
            m.d.sync += [
                stage0.eq(p),
                a.eq(p.acc + p.bias),    # low acc_bits bits of the sum kept: the wrap at acc_bits
            ]

        # ---- stages 1..6: requant ----------------------------------------------------------
        results = {}
        for name in config.requant_modes:
            results[get_mode(name).isa_code] = self._REQUANT_UNITS[name](
                self, m, config, advance=advance, valid=valid, hold=hold, a=a, stage0=stage0,
                side_valid=side_valid)
        # The post state of the element leaving the requant stages (`requant_latency` advances
        # after stage 0): the clamp bounds depend on the parameters only, so they are formed
        # from stage 0's registers and carried along (the activation stage compares without
        # subtracting first).
        state = {"mode": stage0.mode, "use_lut": stage0.lut, "zero_point": stage0.zero_point,
                 "hi": stage0.hi, "tag": stage0.tag, "last": stage0.last}
        m.submodules.activation = activation = Activation(lut=config.lut,
                                                          bits=config.output_bits)
        for name, value in clamp_bounds(stage0.zero_point, stage0.lo, stage0.hi).items():
            bound = Signal.like(getattr(activation, name), name=f"{name}_s1")
            m.d.comb += bound.eq(value)
            state[name] = bound
        if delay_ram:
            late = self._delay_in_ram(m, platform, advance, state, requant_latency)
        else:
            late = {name: delayed(value, requant_latency, name) for name, value in state.items()}

        # An element whose mode was not built gets the first built mode's result.
        (first, *others) = results
        requant = results[first]
        for n, code in enumerate(others):
            name = "requant" if n == len(others) - 1 else f"requant_{code.label}"
            chosen = Signal.like(results[first], name=name)
            m.d.comb += chosen.eq(Mux(late["mode"] == code, results[code], requant))
            requant = chosen

        # ---- stages 7..8: zero point, clamp, LUT -----------------------------------------------
        m.d.comb += [
            activation.en.eq(advance),
            activation.value.eq(requant),
            activation.zero_point.eq(late["zero_point"]),
            activation.hi.eq(late["hi"]),
            activation.use_lut.eq(late["use_lut"]),
            activation.lo_bound.eq(late["lo_bound"]),
            activation.hi_bound.eq(late["hi_bound"]),
            activation.lo_value.eq(late["lo_value"]),
        ]
        if config.lut:
            m.d.comb += [
                activation.lut_wr_en.eq(self.lut_wr_en),
                activation.lut_wr_addr.eq(self.lut_wr_addr),
                activation.lut_wr_data.eq(self.lut_wr_data),
            ]

        m.d.comb += [
            self.o.payload.value.eq(activation.result),
            self.o.payload.tag.eq(delayed(late["tag"], Activation.latency, "tag")),
            self.o.payload.last.eq(delayed(late["last"], Activation.latency, "last")),
        ]
        return m

    @staticmethod
    def _delay_in_ram(m, platform, advance, values, cycles):
        # `values` as they were `cycles` advances ago, from a block RAM: every advance writes
        # them at `wr` (then wr + 1), and the synchronous read port reads `wr' - cycles`, with
        # wr' the pointer after this cycle, so its data register holds the entry written
        # `cycles` advances ago in every cycle, also while the pipeline holds. Reads and the
        # write of the same edge never meet (cycles >= 2).
        assert cycles >= 2
        depth = 1 << (cycles + 1).bit_length()
        layout = data.StructLayout({name: value.shape() for name, value in values.items()})
        m.submodules.post_state = mem = block_ram(shape=layout, depth=depth)
        wr = Signal(range(depth))
        write = mem.write_port()
        read = registered_read(m, mem, platform, name="post_state_rd_data")
        m.d.comb += [
            write.en.eq(advance),
            write.addr.eq(wr),
            read.addr.eq(wr + advance - cycles),   # modulo the depth
        ]
        m.d.comb += [write.data[name].eq(value) for name, value in values.items()]
        with m.If(advance):
            m.d.sync += wr.eq(wr + 1)
        return {name: read.data[name] for name in values}
