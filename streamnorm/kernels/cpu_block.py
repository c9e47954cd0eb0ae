"""The first pass over a dense float block, written as explicit vector code (issue 14).

One read of a block gives the sum of ``x - shift`` and the block's minimum and maximum. Numba
leaves LLVM to vectorise its loops, and LLVM vectorises a float min/max reduction only under
the ``nnan`` fast-math flag, which docs/design.md §4 forbids; the previous kernel therefore
found min/max as an integer reduction over order keys (the float bits with the magnitude
flipped for negatives), which on AVX2 cost three instructions per key and two per min or
max (no 64-bit integer min/max or arithmetic shift). Here the loop is built in LLVM IR with
numba's ``intrinsic``: ``UNROLL`` accumulators of ``WIDTH`` float64 lanes, each value
converted to float64, ``acc += x - shift``, ``lo = x < lo ? x : lo``, ``hi = x > hi ? x : hi``
(``vminpd``/``vmaxpd``, one instruction each). No fast-math flag is set on any instruction,
so LLVM keeps this order of operations exactly:

* lane ``l`` of accumulator ``u`` sums the values ``8 i + 4 u + l`` in order;
* the accumulators combine as ``a0 + a1``, then the lanes as ``(l0 + l1) + (l2 + l3)``;
* the last ``n mod 8`` values are added one by one, in order.

The sum's bits are thus the same on every CPU (the old loop's depended on the vector width
LLVM chose for the machine). Min/max are exact whatever the order, except for the sign of a
zero: ``x < lo`` keeps the first of -0.0 and +0.0. :func:`dense_sum_minmax` fixes the sign
when the minimum or maximum is a zero (one more pass over the block's sign bits, only then),
so within a block min/max order -0.0 below +0.0 as the order keys did.

Measured and left out: the subtract and the add as ``fma(x, 1, -shift)`` and ``fma(d, 1,
acc)`` (the same bits, on the multiply pipes instead of the add pipes that ``vminpd`` shares)
gave nothing on Zen 3.

Numba's cache keys a cached function on its own file only: the IR emitted here is compiled
into :mod:`.cpu_moments`' cached kernels, so a change to it must come with a change to that
file (or a cleared cache), else a warm cache keeps the old code.

Only for a block that holds no NaN: the caller uses min/max only when the sum is finite,
which proves the block holds no NaN and no ±inf.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

#: float64 lanes per vector (one 256-bit register).
WIDTH = 4
#: Independent vector accumulators (2 measured 4-5% faster than 4 on Zen 3, 8 slower).
UNROLL = 2


def _splat(builder, value, vty):
    undef = ir.Constant(vty, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(one, undef, mask)


def _tree(values, op):
    while len(values) > 1:
        values = [op(values[k], values[k + 1]) for k in range(0, len(values), 2)]
    return values[0]


def _emit_sum_minmax(context, builder, dtype, data, start, stop, shift):
    """IR for (sum of x - shift, min, max) of ``data[start:stop]``, as float64 values."""
    f64 = ir.DoubleType()
    vty = ir.VectorType(f64, WIDTH)
    ety = context.get_value_type(dtype)
    lty = ir.VectorType(ety, WIDTH)
    intp = start.type
    step = WIDTH * UNROLL
    zero = ir.Constant(vty, [0.0] * WIDTH)
    vinf = ir.Constant(vty, [float("inf")] * WIDTH)
    vninf = ir.Constant(vty, [float("-inf")] * WIDTH)
    vshift = _splat(builder, shift, vty)

    def vmin(a, b):
        return builder.select(builder.fcmp_ordered("<", b, a), b, a)

    def vmax(a, b):
        return builder.select(builder.fcmp_ordered(">", b, a), b, a)

    base = builder.gep(data, [start])
    n = builder.sub(stop, start)
    n_vec = builder.mul(builder.sdiv(n, ir.Constant(intp, step)), ir.Constant(intp, step))
    pre = builder.block
    fn = builder.function
    loop = fn.append_basic_block("sum_minmax.loop")
    done = fn.append_basic_block("sum_minmax.done")
    after = fn.append_basic_block("sum_minmax.after")
    builder.cbranch(builder.icmp_signed(">", n_vec, ir.Constant(intp, 0)), loop, after)

    builder.position_at_end(loop)
    i = builder.phi(intp)
    accs = [builder.phi(vty) for _ in range(UNROLL)]
    los = [builder.phi(vty) for _ in range(UNROLL)]
    his = [builder.phi(vty) for _ in range(UNROLL)]
    new_acc, new_lo, new_hi = [], [], []
    for u in range(UNROLL):
        at = builder.gep(base, [builder.add(i, ir.Constant(intp, u * WIDTH))])
        x = builder.load(builder.bitcast(at, lty.as_pointer()), align=dtype.bitwidth // 8)
        if ety != f64:
            x = builder.fpext(x, vty)
        new_acc.append(builder.fadd(accs[u], builder.fsub(x, vshift)))
        new_lo.append(vmin(los[u], x))
        new_hi.append(vmax(his[u], x))
    i_next = builder.add(i, ir.Constant(intp, step))
    loop_end = builder.block
    builder.cbranch(builder.icmp_signed("<", i_next, n_vec), loop, done)
    i.add_incoming(ir.Constant(intp, 0), pre)
    i.add_incoming(i_next, loop_end)
    for u in range(UNROLL):
        accs[u].add_incoming(zero, pre)
        accs[u].add_incoming(new_acc[u], loop_end)
        los[u].add_incoming(vinf, pre)
        los[u].add_incoming(new_lo[u], loop_end)
        his[u].add_incoming(vninf, pre)
        his[u].add_incoming(new_hi[u], loop_end)

    builder.position_at_end(done)
    acc_done = _tree(new_acc, builder.fadd)
    lo_done = _tree(new_lo, vmin)
    hi_done = _tree(new_hi, vmax)
    builder.branch(after)

    builder.position_at_end(after)
    acc_v, lo_v, hi_v = builder.phi(vty), builder.phi(vty), builder.phi(vty)
    for phi, first, last in ((acc_v, zero, acc_done), (lo_v, vinf, lo_done),
                             (hi_v, vninf, hi_done)):
        phi.add_incoming(first, pre)
        phi.add_incoming(last, done)

    def lanes(vec):
        return [builder.extract_element(vec, ir.Constant(ir.IntType(32), k))
                for k in range(WIDTH)]

    total = cgutils.alloca_once_value(builder, _tree(lanes(acc_v), builder.fadd))
    lo = cgutils.alloca_once_value(builder, _tree(lanes(lo_v), vmin))
    hi = cgutils.alloca_once_value(builder, _tree(lanes(hi_v), vmax))
    with cgutils.for_range_slice(builder, n_vec, n, ir.Constant(intp, 1), inc=True) as (j, _):
        x = builder.load(builder.gep(base, [j]))
        if ety != f64:
            x = builder.fpext(x, f64)
        builder.store(builder.fadd(builder.load(total), builder.fsub(x, shift)), total)
        builder.store(vmin(builder.load(lo), x), lo)
        builder.store(vmax(builder.load(hi), x), hi)
    return builder.load(total), builder.load(lo), builder.load(hi)


@intrinsic
def contiguous_sum_minmax(typingctx, values, start, stop, shift):
    """(sum of ``x - shift``, min, max) of ``values[start:stop]`` in float64, in the fixed
    order of the module docstring; ``values`` a C-contiguous float32/float64 array, ``0 <=
    start <= stop <= len(values)`` (not checked). Min/max of an empty range: (inf, -inf);
    meaningful only when the range holds no NaN, the sign of a zero min/max unspecified."""
    if not (isinstance(values, types.Array) and values.ndim == 1 and values.layout == "C"
            and values.dtype in (types.float32, types.float64)):
        return None
    sig = types.UniTuple(types.float64, 3)(values, types.intp, types.intp, types.float64)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        result = _emit_sum_minmax(context, builder, values.dtype, array.data, args[1],
                                  args[2], args[3])
        return context.make_tuple(builder, signature.return_type, result)

    return sig, codegen


@njit(cache=True)
def _sign_bits(block):
    """Whether (any, all) of a float block's values have the sign bit set."""
    negative = 0
    for i in range(block.shape[0]):
        negative += 1 if math.copysign(1.0, float(block[i])) < 0.0 else 0
    return negative > 0, negative == block.shape[0]


@njit(cache=True)
def zero_signs(block, lo, hi):
    """``lo``/``hi`` of a NaN-free ``block`` with the sign of a zero fixed: a zero minimum is
    -0.0 when the block holds a -0.0, a zero maximum +0.0 when it holds a +0.0."""
    if lo == 0.0 or hi == 0.0:
        any_negative, all_negative = _sign_bits(block)
        if lo == 0.0:
            # every value is >= 0 here: a set sign bit is a -0.0
            lo = -0.0 if any_negative else 0.0
        if hi == 0.0:
            # every value is <= 0 here: a clear sign bit is a +0.0
            hi = -0.0 if all_negative else 0.0
    return lo, hi


def dense_sum_minmax(values, start, stop, shift):  # pragma: no cover - see the overload
    """(sum of ``x - shift``, min, max) of ``values[start:stop]``, a non-empty float32/float64
    block, in the vector code above; min/max exact (signed zeros fixed) when the sum is
    finite, else meaningless. A strided array goes through a contiguous copy of the block."""
    raise NotImplementedError


@overload(dense_sum_minmax, inline="always")
def _ov_dense_sum_minmax(values, start, stop, shift):
    if not (isinstance(values, types.Array) and values.dtype in (types.float32, types.float64)):
        return None
    if values.layout == "C":
        def impl(values, start, stop, shift):
            total, lo, hi = contiguous_sum_minmax(values, start, stop, shift)
            if np.isfinite(total):
                lo, hi = zero_signs(values[start:stop], lo, hi)
            return total, lo, hi
        return impl

    def copied(values, start, stop, shift):
        # a strided view: the first pass through a contiguous copy of the block
        block = np.ascontiguousarray(values[start:stop])
        total, lo, hi = contiguous_sum_minmax(block, 0, block.shape[0], shift)
        if np.isfinite(total):
            lo, hi = zero_signs(block, lo, hi)
        return total, lo, hi
    return copied
