"""The frame receiver hands over only verified frames, and drops frames cut by the timeout.

The receiver takes any byte stream (every byte, every gap, under the stream rules). A monitor,
independent of the receiver's own logic, follows the bytes accepted after a moment the solver
picks (``mark``, at most once): their count, their CRC-16/CCITT-FALSE computed by Amaranth's
:class:`amaranth.lib.crc.Processor` (not ``hw/crc.py``), the last two bytes and the longest run
of cycles without a byte. When the receiver offers a frame descriptor whose bytes are exactly
those after the mark (the solver may put the mark anywhere, so every frame is covered):

- ``OK`` means the CRC of the payload (the bytes before the last two) equals the last two
  bytes read little-endian, and every payload byte read back from the frame buffer (at an
  offset the solver picks) is the byte received there;
- no descriptor (``OK`` or ``BAD_CRC``) is offered for a frame during whose bytes the line was
  quiet for ``rx_timeout_cycles`` cycles (the receiver dropped it);
- a length above ``max_payload`` comes with ``BAD_LENGTH``, any other with ``OK`` or
  ``BAD_CRC`` (what ``formal/executor.py`` assumes of its descriptors).

Bounded proofs (``formal/checks.py`` gives the depths) on the receiver with ``max_payload = 2``
and ``rx_timeout_cycles = 4`` (:func:`formal.streams.link_config`): its counters are as wide as
those need, its logic the same. (k-induction does not close: a descriptor may be held, and a
skipped frame last, for any time, so no fixed length of trace reaches back to the header.)
"""

from amaranth.hdl import Assert, Assume, Cat, Mux, Signal
from amaranth.lib.crc.catalog import CRC16_CCITT_FALSE

from tessera.hw.link import FrameReceiver
from tessera.spec import protocol
from tessera.spec.protocol import Status

from .bench import FormalBench, stream_rules
from .streams import link_config

__all__ = ["receiver_frames_checked"]


def receiver_frames_checked(*, receiver_class=FrameReceiver, config=None, timeout_cycles=None,
                            crc=True):
    """Return ``(bench, depth)``: the CRC, buffer, timeout and length properties.

    ``config`` is the receiver's (default :func:`~formal.streams.link_config`);
    ``timeout_cycles`` the quiet time the monitor expects to drop a frame (default
    ``config.rx_timeout_cycles``: a different value checks that a differently built receiver is
    caught). ``crc=False`` leaves out the CRC and frame-buffer properties (and their monitor).
    """
    config = link_config(max_payload=2) if config is None else config
    timeout = config.rx_timeout_cycles if timeout_cycles is None else timeout_cycles
    bench = FormalBench()
    m = bench.m
    m.submodules.dut = dut = receiver_class(config)
    byte_in, frame = dut.i, dut.o_frame
    bench.free(byte_in.valid, name="byte_valid")
    bench.free(byte_in.payload, name="byte")
    bench.free(frame.ready, name="frame_ready")
    bench.free(dut.frame_buf.en, name="buf_en")
    bench.free(dut.frame_buf.addr, name="buf_addr")
    stream_rules(bench, byte_in, check=Assume, name="i")
    took = byte_in.valid & byte_in.ready
    byte = byte_in.payload

    # -- the monitor -------------------------------------------------------------------------
    longest = config.max_payload + 8
    mark = bench.free(name="mark")
    armed = Signal()
    m.d.comb += Assume(~(mark & armed))
    m.d.sync += armed.eq(armed | mark)
    counting = armed | mark
    count = Signal(range(longest + 2))           # bytes since the mark, saturating
    with m.If(counting & took & (count <= longest)):
        m.d.sync += count.eq(count + 1)

    # quiet runs between the bytes after the mark
    quiet = Signal(range(timeout + 1))
    cut = Signal()
    with m.If(took):
        m.d.sync += quiet.eq(0)
    with m.Elif(armed & (count != 0) & (quiet != timeout)):
        m.d.sync += quiet.eq(quiet + 1)
    with m.If(took & (quiet == timeout)):     # a byte after `timeout` quiet cycles
        m.d.sync += cut.eq(1)
    with m.If(mark):
        m.d.sync += [quiet.eq(0), cut.eq(0)]

    # -- properties --------------------------------------------------------------------------
    info = frame.payload
    # (a BAD_LENGTH frame may be longer than the saturating count: not followed)
    offered = frame.valid & armed & (info.status != Status.BAD_LENGTH)
    payload_only = offered & (count == info.length + protocol.TRAILER_BYTES)
    whole_frame = offered & (count == info.length + protocol.TRAILER_BYTES
                             + protocol.HEADER_BYTES)
    m.d.comb += [
        Assert(~whole_frame | ~cut, "frame handed over after a receive timeout"),
        Assert(~frame.valid | ((info.status == Status.BAD_LENGTH) ==
                               (info.length > config.max_payload)),
               "length and BAD_LENGTH disagree"),
        Assert(~frame.valid | (info.status == Status.OK) | (info.status == Status.BAD_CRC) |
               (info.status == Status.BAD_LENGTH), "unknown frame status"),
    ]
    if crc:
        _check_payload(bench, dut, mark=mark, counting=counting, count=count,
                       payload_only=payload_only)
    return bench, longest + 4


def _check_payload(bench, dut, *, mark, counting, count, payload_only):
    # An OK frame's CRC and its bytes in the frame buffer, against the bytes after the mark.
    m = bench.m
    byte_in, frame = dut.i, dut.o_frame
    took = byte_in.valid & byte_in.ready
    byte = byte_in.payload
    info = frame.payload
    m.submodules.crc = crc16 = CRC16_CCITT_FALSE(data_width=8).create()
    m.d.comb += [crc16.start.eq(mark), crc16.data.eq(byte), crc16.valid.eq(counting & took)]
    crc_so_far = Mux(mark, protocol.crc16(b""), crc16.crc)   # before this cycle's byte
    crc_before = [Signal(16, name=f"crc_before_{i}") for i in range(2)]   # 1 and 2 bytes ago
    last = [Signal(8, name=f"last_{i}") for i in range(2)]                # last, one before
    with m.If(counting & took):
        m.d.sync += [crc_before[0].eq(crc_so_far), crc_before[1].eq(crc_before[0]),
                     last[0].eq(byte), last[1].eq(last[0])]

    # the payload byte at an offset the solver picks, as received
    probe = bench.constant(width=len(dut.frame_buf.addr), name="probe")
    probed = Signal(8)
    probe_seen = Signal()
    with m.If(counting & took & (count == probe)):
        m.d.sync += [probed.eq(byte), probe_seen.eq(1)]

    m.d.comb += Assert(~payload_only | (info.status != Status.OK) |
                       (Cat(last[1], last[0]) == crc_before[1]), "OK frame with a wrong CRC")
    # the buffer read issued in the previous cycle, while the same OK frame was offered
    read_back = bench.past(payload_only & (info.status == Status.OK) & ~frame.ready &
                           dut.frame_buf.en & (dut.frame_buf.addr == probe) &
                           (probe < info.length) & probe_seen, name="read_back")
    m.d.comb += Assert(~read_back | (dut.frame_buf.data == probed),
                       "frame buffer differs from the received payload")
