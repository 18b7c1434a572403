"""What the program sequencer hands the Core for the ISA version 3 instructions.

A ``CONV`` or an ``ADD`` is checked by the decoder and then issued to the Core whole, with the
state it captures at issue (docs/isa.md, "``CONV``": "the post state and the window state are
captured when ``CONV`` is issued"): the two layouts here are that hand-over, the contract
between :mod:`tessera.hw.sequencer` (initiator, ``Out``) and :mod:`tessera.hw.core` (target,
``In``), each carried on an ``amaranth.lib.stream`` of the layout.

- :func:`conv_issue`: the ``CONV`` fields (``kind``, ``src``, ``dst``, ``w_addr``,
  ``param_addr``), the window state (the ``WINDOW`` fields), its sizes
  (:func:`~tessera.hw.window.window_sizes`: the products a ``CONV`` needs from its first cycle,
  computed once per ``WINDOW`` by the sequencer's checks) and the post state;
- :func:`add_issue`: the ``ADD`` fields (``a_addr``, ``b_addr``, ``dst``, ``count``,
  ``param_addr``) and the post state.

The post state is the GEMM command's (``mode``, ``lut``, ``zero_point``, ``lo``, ``hi``, the
last three ``output_bits`` wide): :func:`post_state`.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data

from tessera.spec import isa
from tessera.spec.isa import CnnOpcode

from .conv_commands import conv_request
from .gemm import POST_STATE, gemm_command
from .layouts import struct_layout
from .window import window_sizes, window_state

__all__ = ["post_state", "conv_issue", "add_issue"]


def post_state(config) -> data.StructLayout:
    """Return the post state as a GEMM command carries it (``output_bits``-wide values)."""
    command = gemm_command(config)
    return data.StructLayout({name: command[name].shape for name in POST_STATE})


def conv_issue(config) -> data.StructLayout:
    """Return the layout of one issued ``CONV``: its fields, the window, its sizes, the post
    state."""
    return data.StructLayout({
        "conv": conv_request(), "window": window_state(), "sizes": window_sizes(),
        "post": post_state(config),
    })


def add_issue(config) -> data.StructLayout:
    """Return the layout of one issued ``ADD``: its fields and the post state."""
    layout = struct_layout(isa.CNN_LAYOUTS[CnnOpcode.ADD])
    fields = {name: unsigned(layout[name].shape.width)
              for name in ("a_addr", "b_addr", "dst", "count", "param_addr")}
    return data.StructLayout({**fields, "post": post_state(config)})
