"""Discriminating stimulus and independent oracles for the requant gateware tests.

The oracles here do not use :mod:`tessera.numerics`: mode "onnx" is plain NumPy float32
arithmetic, mode "tflite" the C formulas of docs/numerics.md written out with Python integers. The
tests compare the gateware against both these and :mod:`tessera.numerics`.
"""

import numpy as np

__all__ = [
    "INT32_MIN", "INT32_MAX", "SAT16", "wrap32", "f32_bits",
    "onnx_oracle", "tflite_oracle", "onnx_vectors", "tflite_vectors",
    "INT48_MIN", "INT48_MAX", "saturation", "onnx_oracle_wide", "onnx_vectors48",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
SAT16 = (-(1 << 15), (1 << 15) - 1)
INT48_MIN = -(1 << 47)
INT48_MAX = (1 << 47) - 1


def saturation(bits):
    """Return ``(lo, hi)`` of a signed ``bits``-wide saturation."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


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


def tflite_oracle(a, m0, shift, result_bits=16):
    """``RDBPOT(SRDHM(a << max(e,0), m0), max(-e,0))`` with Python ints, saturated to int16
    (``result_bits``)."""
    out = [_tflite_one(int(x), int(m), int(e)) for x, m, e in zip(a, m0, shift)]
    return np.clip(np.array(out, dtype=np.int64), *saturation(result_bits))


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


def _conversion_decides(rng, n):
    """(a, M bits) whose result is a rint tie, or one step from it, by float32(a)'s rounding.

    ``|a| = hi * 2^g + low`` (``g`` = 1..7 dropped bits, guard and sticky in ``low``) with the
    low ``t`` bits of ``hi`` at ``2^(t-1) - 1`` or ``2^(t-1)``, and ``M = 2^-(g+t)``: the
    product is exact, and the result ``(hi + r) / 2^t`` is a tie for one value of the
    round-to-nearest-even increment ``r`` and not for the other. A unit that drops or
    misapplies ``r`` (for odd or even ``hi``) gives a different integer for many of these.
    """
    t = rng.integers(9, 24, n)                      # |result| < 2^15 with a 24-bit hi
    g = rng.integers(1, 8, n)
    top = rng.integers(1 << 23, 1 << 24, n) >> t << t
    hi = top + (1 << (t - 1)) - rng.integers(0, 2, n)
    guard = (rng.random(n) < 0.85).astype(np.int64)   # mostly r = 1 (or a tie)
    sticky = rng.integers(0, 1 << 6, n) & ((1 << np.maximum(g - 1, 0)) - 1)
    a = ((hi << g) + (guard << (g - 1)) + sticky) * rng.choice([-1, 1], n)
    return a.astype(np.int64), ((127 - g - t) << 23).astype(np.uint32)


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
    parts.append(_conversion_decides(rng, 300))
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


def onnx_oracle_wide(a, multiplier_bits, result_bits):
    """``rint(float32(a) * M)`` for int48 ``a``, saturated to ``result_bits``.

    ``float32(a)`` is formed from the exact Python integer (``float(a)`` is exact below 2^53,
    then one rounding to float32), independently of NumPy's int64 -> float32 cast.
    """
    a32 = np.array([np.float32(float(int(x))) for x in a], dtype=np.float32)
    m = np.asarray(multiplier_bits, dtype=np.uint32).view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.rint(a32 * m)
    return np.clip(y, *saturation(result_bits)).astype(np.int64)


def onnx_vectors48(rng, n_random):
    """Return ``(a int64, multiplier bits uint32)`` with ``a`` over the int48 range.

    The int48 -> float32 conversion's ties (``a`` exactly between two float32s, up to 2^47),
    its extremes, the int32 cases of :func:`onnx_vectors` (bit-identical with a 32-bit unit),
    product ties and near-half products moved up by up to 2^23, and random log-uniform ``a``
    with ``M`` picked so that ``|a * M|`` lands around the 24-bit result range.
    """
    a32, m32 = onnx_vectors(rng, n_random // 2)
    parts = [(a32, m32)]
    special_a = [INT48_MAX, INT48_MIN, INT48_MIN + 1, INT48_MAX - 1, (1 << 47) - (1 << 23),
                 (1 << 47) - (1 << 23) - 1, -(1 << 32), (1 << 32) + (1 << 8), (1 << 31),
                 -(1 << 31) - 1, (1 << 40) + (1 << 16), (1 << 40) + 3 * (1 << 16)]
    special_m = [1.0, 2.0 ** -24, 2.0 ** -23, 2.0 ** -40, 2.0 ** -47, 0.75 * 2.0 ** -30,
                 2.0 ** -126, 1 / 3]
    a_grid, m_grid = np.meshgrid(special_a, f32_bits(special_m))
    parts.append((a_grid.ravel(), m_grid.ravel()))
    # float32(a) ties: (24-bit mantissa * 2 + 1) * 2^j up to 2^47, with M near a power of two
    # that puts |a * M| in [2^20, 2^24), where a float32(a) one ulp off often changes the result.
    mant = rng.integers(1 << 23, 1 << 24, 400)
    shift = rng.integers(0, 23, 400)
    a = ((mant * 2 + 1) << shift) * rng.choice([-1, 1], 400)
    bitlen = 25 + shift
    target = rng.integers(20, 24, 400)
    parts.append((a, f32_bits(2.0 ** (target - bitlen).astype(np.float64)
                              * rng.choice([1.0, 0.75, 1.5, 1.25], 400))))
    # Product ties / near-half products of the 32-bit set, a moved up by 2^s (M down by 2^s).
    for maker in (_product_ties, _near_half_products):
        a, m = maker(rng, 300)
        s = rng.integers(0, 17, len(a))
        exp = (m >> 23).astype(np.int64) - s
        keep = (exp >= 1) & (np.abs(a) << s <= INT48_MAX)
        parts.append(((a << s)[keep], ((exp << 23) | (m & 0x7FFFFF))[keep].astype(np.uint32)))
    # Random: log-uniform int48 a, M placing |a * M| in [2^-3, 2^25).
    bits = rng.integers(0, 48, n_random)
    mag = rng.integers(0, 1 << 47, n_random, dtype=np.int64) >> (47 - bits)
    a = np.clip(rng.choice([-1, 1], n_random) * mag, INT48_MIN, INT48_MAX)
    exp = 127 + rng.integers(-3, 25, n_random) - bits
    m = (np.clip(exp, 1, 127 + 23) << 23) | rng.integers(0, 1 << 23, n_random)   # M < 2^24
    parts.append((a, m.astype(np.uint32)))
    a = np.concatenate([p[0] for p in parts]).astype(np.int64)
    m = np.concatenate([p[1] for p in parts]).astype(np.uint32)
    return a, m


async def write_lut(ctx, dut, table):
    """Write the int8 ``table`` into ``dut``'s activation table through its LUT write port."""
    for addr, entry in enumerate(np.asarray(table, dtype=np.int8).view(np.uint8)):
        ctx.set(dut.lut_wr_en, 1)
        ctx.set(dut.lut_wr_addr, addr)
        ctx.set(dut.lut_wr_data, int(entry))
        await ctx.tick()
    ctx.set(dut.lut_wr_en, 0)
