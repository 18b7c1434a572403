"""Helpers of the CNN gateware tests (tests/test_hw_cnn_*.py)."""

from amaranth.hdl import Value

__all__ = ["set_window"]


def set_window(ctx, port, window):
    """Drive a ``window_state()`` port with a window's fields (``pad_value`` two's complement)."""
    for name in window.__dataclass_fields__:
        sig = Value.cast(getattr(port, name))
        ctx.set(sig, getattr(window, name) & ((1 << len(sig)) - 1))
