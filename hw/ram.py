"""Block RAMs read through a registered port, without read-during-write collision logic.

A synchronous read port of an Amaranth :class:`~amaranth.lib.memory.Memory` promises the *old*
contents when the same address is written in the same cycle. Neither the ECP5 DP16KD nor the
iCE40 SB_RAM40_4K guarantees anything across its ports on such a collision, so Yosys
(``memory_libmap``) keeps the promise in fabric: it delays every write by one cycle and puts a
bypass multiplexer (registered write data, an address comparison) behind every read output. On
the ULX3S-85F that multiplexer sat between the block RAM's 5.8 ns clock-to-output and every
consumer (the frame buffer's reader, the array's operand registers): those were the critical
paths, and the emulation cost 141 flip-flops on the 2048 x 64 ACT buffer alone.

Tessera never needs the promise. The ISA makes the compiler synchronise every buffer region an
in-flight ``GEMM`` reads, or its drain writes, before another agent writes or reads it
(docs/isa.md, "Ordering and hazards"; :class:`tessera.runtime.hazards.HazardTracker` refuses a
program that does not), the receiver writes the frame buffer only while no frame is being
executed, and reads whose data nobody uses may meet a write harmlessly. :func:`block_ram`
therefore marks its memory ``no_rw_check`` and :func:`registered_read` builds the read port as
an asynchronous read followed by a data register, the form in which Yosys's ``memory_dff``
honours the attribute: it merges the register into a plain block RAM read port and adds no
collision logic. In simulation the port behaves exactly like a synchronous read port (the data
register holds ``mem[addr]`` of the previous cycle, the old contents on a collision; ``en`` low
holds it), except that a collision returns garbage, as the hardware may (see
:func:`registered_read`).
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Mux, Signal, Value
from amaranth.lib.memory import Memory

__all__ = ["RegisteredRead", "block_ram", "registered_read"]


def block_ram(*, shape, depth):
    """Return a zero-initialised :class:`Memory` marked ``no_rw_check`` (see module docstring).

    Read it only through :func:`registered_read`: a synchronous read port of Amaranth's own
    reaches Yosys already merged and gets the collision logic regardless of the attribute.
    """
    return Memory(shape=shape, depth=depth, init=[], attrs={"no_rw_check": 1})


@dataclass(frozen=True)
class RegisteredRead:
    """The ports of :func:`registered_read`: drive ``addr``, read ``data`` a cycle later."""

    addr: Value
    data: Value


def registered_read(m, memory, platform, *, en=1, name="rd_data"):
    """Add a read port of ``memory`` to ``m``: ``data`` <= ``memory[addr]`` on clocks with ``en``.

    The same cycle behaviour as ``memory.read_port()`` (``sync`` domain) with ``en``, built as an
    asynchronous read and a register so that a ``no_rw_check`` memory maps to a block RAM read
    port without collision logic. The register (named ``name``) is not reset, like a read
    port's data.

    In simulation (``platform`` is ``None``) a read of an address that one of ``memory``'s write
    ports writes in the same cycle returns the contents inverted: the hardware's result is
    undefined, so a design or program that used such a read fails the bit-exact tests instead
    of passing on the simulator's old-data semantics. Create the write ports first.
    """
    port = memory.read_port(domain="comb")
    data = Signal(memory.shape, name=name, reset_less=True)
    value = Value.cast(port.data)           # a plain value also for a layout-shaped memory
    if platform is None:
        collision = Signal(name=f"{name}_collision")
        m.d.comb += collision.eq(Cat(write.en.any() & (write.addr == port.addr)
                                     for write in memory.write_ports).any())
        value = Mux(collision, ~value, value)
    with m.If(en):
        m.d.sync += Value.cast(data).eq(value)
    return RegisteredRead(addr=port.addr, data=data)
