"""Discriminating stimulus and independent oracles for the requant gateware tests.

The oracles here do not use :mod:`tessera.numerics`: mode "onnx" is plain NumPy float32
arithmetic, mode "tflite" the C formulas of NUMERICS.md written out with Python integers. The
tests compare the gateware against both these and :mod:`tessera.numerics`.
"""

import numpy as np

__all__ = [
    "INT32_MIN", "INT32_MAX", "SAT16", "wrap32", "f32_bits",
    "onnx_oracle", "tflite_oracle", "onnx_vectors", "tflite_vectors",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
SAT16 = (-(1 << 15), (1 << 15) - 1)


def wrap32(x):
    """Return ``x`` wrapped to int32 (two's complement), elementwise, as int64."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def f32_bits(values):
    """Return the IEEE-754 bits (uint32) of ``values`` rounded to float32."""
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def onnx_oracle(a, multiplier_bits):
    """``rint(float32(a) * M)`` in NumPy float32, saturated to int16 (int64 array)."""
    a = np.asarray(a, dtype=np.int32)
    m = np.asarray(multiplier_bits, dtype=np.uint32).view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.rint(a.astype(np.float32) * m)
    return np.clip(y, *SAT16).astype(np.int64)


def _tflite_one(a, m0, e):
    m0 = m0 - (1 << 32) if m0 >= 1 << 31 else m0             # C int32_t
    left, right = max(e, 0), max(-e, 0)
    x = int(wrap32(a << left)) if left < 64 else 0
    if x == INT32_MIN and m0 == INT32_MIN:
        s = INT32_MAX
    else:
        t = x * m0 + ((1 << 30) if x * m0 >= 0 else 1 - (1 << 30))
        s = t // (1 << 31) if t >= 0 else -((-t) // (1 << 31))  # C division truncates
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if s < 0 else 0)
    return (s >> right) + (1 if (s & mask) > threshold else 0)


def tflite_oracle(a, m0, shift):
    """``RDBPOT(SRDHM(a << max(e,0), m0), max(-e,0))`` with Python ints, saturated to int16."""
    out = [_tflite_one(int(x), int(m), int(e)) for x, m, e in zip(a, m0, shift)]
    return np.clip(np.array(out, dtype=np.int64), *SAT16)


def _random_ints(rng, n):
    """Signed int32 values with log-uniform magnitudes (every bit length equally likely)."""
    bits = rng.integers(0, 32, n)
    mag = rng.integers(0, 1 << 31, n, dtype=np.int64) >> (31 - bits)
    sign = rng.choice([-1, 1], n)
    return np.clip(sign * mag, INT32_MIN, INT32_MAX)


_SPECIAL_A = [
    0, 1, -1, 2, -2, 3, -3, 127, -128, INT32_MAX, INT32_MIN, INT32_MIN + 1, INT32_MAX - 1,
    1 << 24, (1 << 24) + 1, (1 << 24) + 2, (1 << 24) + 3, -((1 << 24) + 1), -((1 << 24) + 3),
    (1 << 25) + 2, (1 << 25) + 6, (1 << 25) - 1, (1 << 31) - 64, (1 << 31) - 65, (1 << 31) - 63,
    -((1 << 31) - 64), -((1 << 31) - 192), (1 << 31) - 128, (1 << 30) + 64, (1 << 30) + 192,
    32767, 32768, 65535, -65535, 65537, -65537,
]


def _product_ties(rng, n):
    """(a, M bits) whose 48-bit mantissa product lies exactly halfway between two float32s."""
    a_out, m_out = [], []
    while len(a_out) < n:
        j = int(rng.integers(0, 23))
        odd = int(rng.integers(1 << (22 - j), 1 << (23 - j))) * 2 + 1   # mm = odd * 2^j
        mm = odd << j
        if not (1 << 23) <= mm < 1 << 24:
            continue
        d = int(rng.choice([23, 24]))                   # dropped bits of the product
        if d - 1 - j < 0:
            continue
        modulus = 1 << (d - j)
        base = ((1 << (d - 1 - j)) * pow(odd, -1, modulus)) % modulus
        ma = base + modulus * int(rng.integers(0, (1 << 24) // modulus + 1))
        if not (1 << 23) <= ma < 1 << 24:
            continue
        if ((ma * mm) >> 47) != (d == 24):
            continue
        a = (ma << int(rng.integers(0, 8))) * int(rng.choice([-1, 1]))
        if not INT32_MIN <= a <= INT32_MAX:
            continue
        # Pick the exponent so that |a * M| lands in [2^-2, 2^16): the integer rounding counts.
        target = int(rng.integers(-2, 17))
        exp_field = 127 + target - (abs(a).bit_length() - 1)
        if not 1 <= exp_field <= 254:
            continue
        a_out.append(a)
        m_out.append((exp_field << 23) | (mm - (1 << 23)))
    return np.array(a_out, dtype=np.int64), np.array(m_out, dtype=np.uint32)


def _near_half_products(rng, n):
    """(a, M bits) whose exact product is within one ``|a|`` of ``(k + 1/2) * 2^s``.

    The float32 rounding of such a product often lands exactly on the half-integer, where the
    final rint then ties to even although the exact product was not a tie: the double rounding
    that a single-rounding implementation gets wrong.
    """
    a_out, m_out = [], []
    while len(a_out) < n:
        a = int(rng.integers(1 << 8, 1 << 24))
        k = int(rng.integers(0, 1 << 14))
        for s in range(0, 80):
            mm = (((2 * k + 1) << s) + 2 * a - 1) // (2 * a)        # ceil((k + 1/2) 2^s / a)
            if mm >= 1 << 23:
                break
        if not (1 << 23) <= mm < 1 << 24:
            continue
        mm -= int(rng.integers(0, 2))                              # from above or below
        exp_field = 150 - s
        if (1 << 23) <= mm and 1 <= exp_field <= 254:
            a_out.append(a * int(rng.choice([-1, 1])))
            m_out.append((exp_field << 23) | (mm - (1 << 23)))
    return np.array(a_out, dtype=np.int64), np.array(m_out, dtype=np.uint32)


def onnx_vectors(rng, n_random):
    """Return ``(a int64, multiplier bits uint32)`` covering the cases that separate rules."""
    special_m = [1.0, 0.5, 0.25, 0.75, 1.25, 3.0, 0.1, 1 / 3, 2.0 ** -8, 1.5 * 2.0 ** -12,
                 2.0 ** -24, 2.0 ** -31, 2.0 ** -126, np.float32(2.0 ** 24) - 1,
                 np.nextafter(np.float32(2.0 ** 24), np.float32(0)), 65535.5, 255.75]
    a_grid, m_grid = np.meshgrid(_SPECIAL_A, f32_bits(special_m))
    parts = [(a_grid.ravel(), m_grid.ravel())]
    # rint ties: M = 2^-k, a = odd * 2^(k-1); and M = odd/4 (dyadic scales).
    k = rng.integers(1, 31, 300)
    odd = rng.integers(-(1 << 16), 1 << 16, 300) * 2 + 1
    a = np.clip(odd << (k - 1), INT32_MIN, INT32_MAX)
    parts.append((a, f32_bits(2.0 ** -k.astype(np.float64))))
    a = _random_ints(rng, 300) >> rng.integers(0, 16, 300)
    parts.append((a, f32_bits((rng.integers(1, 400, 300) * 2 + 1) / 4.0)))
    # float32(a) ties: a = (24-bit mantissa * 2 + 1) * 2^j, exactly between two float32s.
    mant = rng.integers(1 << 23, 1 << 24, 300)
    a = ((mant * 2 + 1) << rng.integers(0, 7, 300)) * rng.choice([-1, 1], 300)
    parts.append((np.clip(a, INT32_MIN, INT32_MAX),
                  f32_bits(2.0 ** -rng.integers(8, 30, 300).astype(np.float64)
                           * rng.choice([1.0, 0.75, 1.5, 1.25], 300))))
    parts.append(_product_ties(rng, 400))
    parts.append(_near_half_products(rng, 400))
    # Random: log-uniform a, M with random mantissa and exponent 2^-40 .. 2^12 (per element).
    exp = rng.integers(127 - 40, 127 + 12, n_random)
    bits = (exp << 23) | rng.integers(0, 1 << 23, n_random)
    parts.append((_random_ints(rng, n_random), bits.astype(np.uint32)))
    a = np.concatenate([p[0] for p in parts]).astype(np.int64)
    m = np.concatenate([p[1] for p in parts]).astype(np.uint32)
    return a, m


def tflite_vectors(rng, n_random):
    """Return ``(a int64, m0 uint32, shift int64)`` covering the cases that separate rules.

    Everything is inside the contract (``m0`` 0 or in [2^30, 2^31), ``-31 <= e <= 30``).
    """
    special_m0 = [0, 1 << 30, (1 << 30) + 1, (1 << 31) - 1, 1518500250, 1431655765]
    special_e = [-31, -30, -16, -9, -8, -2, -1, 0, 1, 2, 7, 15, 30]
    grid = np.array(np.meshgrid(_SPECIAL_A, special_m0, special_e)).reshape(3, -1)
    parts = [tuple(grid)]
    # Ties: m0 = 2^30 makes SRDHM(x) = x/2 rounded (ties when x is odd); a = 2 * odd * 2^(k-1)
    # makes the rounding shift tie as well.
    k = rng.integers(1, 31, 400)
    odd = rng.integers(-(1 << 14), 1 << 14, 400) * 2 + 1
    a = np.clip((odd << k) + rng.choice([0, 1, -1], 400), INT32_MIN, INT32_MAX)
    parts.append((a, np.full(400, 1 << 30), -k))
    # Left shifts that wrap, e.g. 1 << 31 = INT32_MIN.
    e = rng.integers(1, 31, 200)
    parts.append((_random_ints(rng, 200), rng.integers(1 << 30, 1 << 31, 200), e))
    e = rng.integers(-31, 3, n_random)
    parts.append((_random_ints(rng, n_random), rng.integers(1 << 30, 1 << 31, n_random), e))
    a = np.concatenate([p[0] for p in parts]).astype(np.int64)
    m0 = np.concatenate([p[1] for p in parts]).astype(np.uint32)
    shift = np.concatenate([p[2] for p in parts]).astype(np.int64)
    return a, m0, shift
