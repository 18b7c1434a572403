"""Helpers of the CNN gateware tests (tests/test_hw_cnn_*.py)."""

from amaranth.hdl import Value

__all__ = ["set_window", "set_sizes", "window_sizes_of"]


def set_window(ctx, port, window):
    """Drive a ``window_state()`` port with a window's fields (``pad_value`` two's complement)."""
    for name in window.__dataclass_fields__:
        sig = Value.cast(getattr(port, name))
        ctx.set(sig, getattr(window, name) & ((1 << len(sig)) - 1))


def window_sizes_of(window) -> dict:
    """Return a window's ``window_sizes()`` fields (``taps``, ``pixels``, ``k_conv``)."""
    taps = window.kernel_h * window.kernel_w
    return {"taps": taps, "pixels": window.out_h * window.out_w, "k_conv": taps * window.in_c}


def set_sizes(ctx, port, window):
    """Drive a ``window_sizes()`` port with the sizes of ``window``."""
    for name, value in window_sizes_of(window).items():
        ctx.set(getattr(port, name), value)
