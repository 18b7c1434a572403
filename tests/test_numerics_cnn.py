"""Mode-independent CNN kernels: geometry, accumulators against a direct loop, errors."""

import re

import numpy as np
import pytest

from tessera.numerics import cnn

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("size, kernel, stride, dilation, expected", [
    (6, 3, 2, 1, (0, 1)), (7, 3, 2, 1, (1, 1)), (49, 10, 2, 1, (4, 5)), (10, 4, 1, 1, (1, 2)),
    (5, 3, 1, 2, (2, 2)), (4, 1, 2, 1, (0, 0)), (3, 7, 1, 1, (3, 3)),
])
def test_same_padding_puts_the_extra_at_the_end(size, kernel, stride, dilation, expected):
    assert cnn.same_padding(size, kernel, stride, dilation) == expected


def _direct_conv(x, w, bias, zx, stride, dilation, pads):
    # One output at a time, skipping taps outside the image: TFLite Micro's loop nest.
    b, h, wd, _ = x.shape
    oc, kh, kw, _ = w.shape
    oh = cnn.output_size(h, kh, stride[0], dilation[0], *pads[0])
    ow = cnn.output_size(wd, kw, stride[1], dilation[1], *pads[1])
    out = np.zeros((b, oh, ow, oc), np.int64)
    for n in range(b):
        for oy in range(oh):
            for ox in range(ow):
                for ky in range(kh):
                    for kx in range(kw):
                        iy = oy * stride[0] - pads[0][0] + ky * dilation[0]
                        ix = ox * stride[1] - pads[1][0] + kx * dilation[1]
                        if 0 <= iy < h and 0 <= ix < wd:
                            out[n, oy, ox] += (x[n, iy, ix].astype(np.int64) - zx) @ \
                                w[:, ky, kx].astype(np.int64).T
    return out + (0 if bias is None else bias)


@pytest.mark.parametrize("stride, dilation, padding", [
    ((1, 1), (1, 1), "same"), ((2, 3), (1, 1), "valid"), ((1, 2), (2, 1), "same"),
    ((2, 2), (2, 2), ((2, 0), (1, 3))),
])
def test_conv2d_accumulators_match_a_direct_loop(stride, dilation, padding):
    x = RNG.integers(-128, 128, (2, 7, 6, 3)).astype(np.int8)
    w = RNG.integers(-127, 128, (4, 3, 2, 3)).astype(np.int8)
    bias = RNG.integers(-1000, 1000, 4).astype(np.int32)
    pads = cnn.resolve_padding(padding, (7, 6), (3, 2), stride, dilation)
    got = cnn.conv2d_accumulators(x, w, bias, x_zero_point=5, stride=stride, dilation=dilation,
                                  padding=padding)
    np.testing.assert_array_equal(got, _direct_conv(x, w, bias, 5, stride, dilation, pads))


def test_depthwise_accumulators_are_grouped_convolutions():
    x = RNG.integers(-128, 128, (2, 6, 5, 3)).astype(np.int8)
    w = RNG.integers(-127, 128, (1, 3, 3, 6)).astype(np.int8)
    got = cnn.depthwise_accumulators(x, w, None, x_zero_point=-4, depth_multiplier=2, stride=2,
                                     padding="same")
    pads = cnn.resolve_padding("same", (6, 5), (3, 3), (2, 2))
    for c in range(6):
        one = w[0, :, :, c][None, :, :, None]
        want = _direct_conv(x[..., c // 2:c // 2 + 1], one, None, -4, (2, 2), (1, 1), pads)
        np.testing.assert_array_equal(got[..., c], want[..., 0])


def test_max_pool_ignores_the_padding():
    x = np.full((1, 3, 3, 1), -128, np.int8)
    np.testing.assert_array_equal(cnn.max_pool2d(x, pool=3, stride=1, padding="same"), x)
    np.testing.assert_array_equal(cnn.pool_tap_counts((3, 3), pool=3, stride=1, padding="same"),
                                  [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_pad_reshape_concatenate():
    x = np.arange(6, dtype=np.int8).reshape(1, 2, 3, 1)
    y = cnn.pad(x, ((0, 0), (1, 0), (0, 1), (0, 0)), value=-9)
    assert y.shape == (1, 3, 4, 1) and y[0, 0, 0, 0] == -9 and y[0, 2, 3, 0] == -9
    assert cnn.reshape(x, (-1,)).shape == (1, 6)
    assert cnn.concatenate([x, x]).shape == (1, 2, 3, 2)


@pytest.mark.parametrize("call, error, message", [
    (lambda: cnn.conv2d_accumulators(np.zeros((1, 4, 4, 3), np.int8),
                                     np.zeros((2, 3, 3, 2), np.int8), None, x_zero_point=0),
     ValueError, "w_q must have 3 input channels (shape [OC, KH, KW, 3]) to match x_q of shape "
                 "(1, 4, 4, 3), not (2, 3, 3, 2)"),
    (lambda: cnn.conv2d_accumulators(np.zeros((4, 4, 3), np.int8),
                                     np.zeros((2, 3, 3, 3), np.int8), None, x_zero_point=0),
     ValueError, "x_q must be 4-D NHWC [batch, height, width, channels], not shape (4, 4, 3)"),
    (lambda: cnn.conv2d_accumulators(np.zeros((1, 4, 4, 3), np.float32),
                                     np.zeros((2, 3, 3, 3), np.int8), None, x_zero_point=0),
     TypeError, "x_q must be a numpy array of int8 (int16 for wider operands), not float32"),
    (lambda: cnn.max_pool2d(np.zeros((1, 2, 2, 1), np.int8), pool=3, stride=1,
                            padding="valid"),
     ValueError, "The kernel (3 taps, dilation 1) does not fit an input of 2 with padding (0, 0)"),
    (lambda: cnn.max_pool2d(np.zeros((1, 2, 2, 1), np.int8), pool=2, stride=0,
                            padding="valid"),
     ValueError, "stride must be a positive integer or a pair of them, not 0"),
    (lambda: cnn.resolve_padding("full", (2, 2), (1, 1), (1, 1)),
     ValueError, "padding must be 'same', 'valid' or ((top, bottom), (left, right)), not 'full'"),
    (lambda: cnn.depthwise_accumulators(np.zeros((1, 4, 4, 3), np.int8),
                                        np.zeros((1, 3, 3, 3), np.int8), None, x_zero_point=0,
                                        depth_multiplier=2),
     ValueError, "w_q must have shape [1, KH, KW, 6] (input channels x depth_multiplier 2), "
                 "not (1, 3, 3, 3)"),
])
def test_errors_say_what_is_wrong(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()
