"""The compact engine's token step as a program (``hw.compact.isa``), from the model's layout.

The program follows ``golden.bitexact`` op by op (``DeviceLayout.ops``: i, f, g, o, gate, down per
layer, then the head). Each op's input goes through the quantiser's passes, then its ``MatVec``;
the MLGRU recurrence, the GLU and the residual adds are passes over whole vectors in between.
Nothing overlaps: on the compact engine the ternary lanes dominate the step.
"""

from __future__ import annotations

from golden.image import DeviceLayout, Op

from .isa import Imm, MatVec, Mem, Pass, Scalar, Vec

__all__ = ["step_program", "step_work", "quantiser", "silu", "LMUL_FUNCTIONS"]

#: The functions whose elements go through the L-Mul (``hw.compact.arith``).
LMUL_FUNCTIONS = ("mul", "quant", "int_mul")

# (their formats: hw.compact.isa.SCALAR_FORMATS)
AMAX, EXPONENT, SUMSQ, NORM, INV, SCALE = (Scalar(k) for k in range(6))


def quantiser(src: Vec, k: int, gain: Mem, pre: Mem | None, header: int) -> list:
    """RMSNorm and int8 quantisation of ``src[:k]`` into bank ``q``, the op's output scale into
    ``SCALE`` (``golden.bitexact.norm_quant``). ``header``: the op's pg word (c | eps << 16)."""
    squares = [Pass("mul", k, Vec("t"), src, src, reduce="top_exponent", into=EXPONENT)] if pre is None else [
        Pass("mul", k, Vec("t"), src, pre),  # v = x * pre
        Pass("mul", k, Vec("t"), Vec("t"), Vec("t"), reduce="top_exponent", into=EXPONENT),
    ]
    return [
        # u = x * gain into u, max|u| on the way
        Pass("mul", k, Vec("u"), src, gain, reduce="absmax", into=AMAX),
        # the squares of v into t, their top exponent on the way; then their sum
        *squares,
        Pass("copy", k, None, Vec("t"), reduce="aligned_sum", into=SUMSQ, exponent=EXPONENT),
        Pass("int_pow2", 1, SUMSQ, SUMSQ, EXPONENT),
        Pass("add", 1, SUMSQ, SUMSQ, Mem("pg", header, "hi")),  # + K * eps
        Pass("rsqrt", 1, NORM, SUMSQ),
        Pass("recip", 1, INV, AMAX),
        Pass("mul", 1, INV, INV, Imm(127.0)),
        Pass("quant", k, Vec("q"), Vec("u"), INV),
        Pass("mul", 1, SCALE, AMAX, NORM),
        Pass("mul", 1, SCALE, SCALE, Mem("pg", header, "lo")),  # * c
    ]


def silu(n: int, dst: Vec, src: Vec) -> list:
    """``dst = src * sigmoid(src)`` in two passes (the pipeline has one L-Mul, after no adder)."""
    return [Pass("sigmoid", n, dst, src), Pass("mul", n, dst, src, dst)]


def _matvec(op: Op, dst: Vec, odd: Vec | None = None, argmax: bool = False) -> MatVec:
    return MatVec(op.rows, op.cols, op.word_base, op.words_per_row, SCALE, dst, odd, argmax)


def _pg_quantiser(src: Vec, op: Op) -> list:
    return quantiser(src, op.cols, Mem("pg", op.pg_base, "lo"), Mem("pg", op.pg_base, "hi"), op.pg_header)


def _mlgru(layout: DeviceLayout, g: Op) -> list:
    """``golden.bitexact.recurrence`` (code output gate) for layer ``g.layer``: i_raw in ``i``,
    f_raw in ``f``, g_raw in ``r``; the state in ``h`` at the layer's d words; the output into ``p``."""
    d = layout.config.hidden_size
    h = Vec("h", g.layer * d)
    program = [Pass("sigmoid_neg", d, Vec("t"), Vec("f"))]  # z = 1 - f
    if g.use_keep:
        program.append(Pass("mul", d, Vec("t"), Vec("t"), Mem("aux", g.aux_base)))  # z * (1 - lb)
    program += [
        *silu(d, Vec("u"), Vec("i")),
        Pass("mul", d, Vec("u"), Vec("u"), Vec("t")),  # the input term silu(i) * z
        Pass("mul", d, Vec("w"), Vec("t"), h),  # z * h in fp32
        Pass("sub32", d, h, h, Vec("w")),
        Pass("add32", d, h, h, Vec("u")),  # h - z * h + silu(i) * z
        Pass("round16", d, Vec("u"), h),
        *silu(d, Vec("t"), Vec("u")),
        Pass("mul", d, Vec("p"), Vec("r"), Vec("t")),  # g * silu(h)
    ]
    return program


def step_program(layout: DeviceLayout) -> list:
    """The instructions of one token step for ``layout``."""
    c = layout.config
    d, inter = c.hidden_size, c.intermediate_size
    program = [
        Pass("zero", c.num_hidden_layers * d, Vec("h"), first_only=True),
        Pass("copy", d, Vec("x"), Mem("embedding", 0, per_token=True)),
    ]
    gate = None
    for op in layout.ops:
        kind = op.name.split(".")[-1]
        gate = op if kind == "gate" else gate
        if kind in ("i", "f", "g", "gate", "head"):
            program += _pg_quantiser(Vec("x"), op)
        elif kind == "o":
            program += _pg_quantiser(Vec("p"), op)
        else:  # down: the GLU's output, its gains in aux (at the gate op's aux_base), no pre-norm
            program += quantiser(Vec("p"), op.cols, Mem("aux", gate.aux_base), None, op.pg_header)
        if kind in ("i", "f"):
            program.append(_matvec(op, Vec(kind)))
        elif kind == "g":
            program.append(_matvec(op, Vec("r")))
            program += _mlgru(layout, op)
        elif kind == "gate":  # rows interleaved (gate j, value j): the even rows into r, the odd into s
            program.append(_matvec(op, Vec("r"), odd=Vec("s")))
            program += [*silu(inter, Vec("t"), Vec("r")), Pass("mul", inter, Vec("p"), Vec("t"), Vec("s"))]
        elif kind in ("o", "down"):
            program += [_matvec(op, Vec("r")), Pass("add", d, Vec("x"), Vec("x"), Vec("r"))]
        else:
            program.append(_matvec(op, Vec("logits"), argmax=True))
    return program


def step_work(program) -> dict:
    """The activity counters' increments (``golden.image.COUNTERS``) that one step of ``program``
    makes: weight words read, elements quantised, accumulators rescaled and L-Mul operations.

    The program is straight-line, so these are the same for every step; the compact engine does
    not count them (``build_info``'s ``per_step``: the host multiplies by the steps counted)."""
    work = {"weight_words": 0, "quant_elements": 0, "post_rows": 0, "lmul_ops": 0}
    for ins in program:
        if isinstance(ins, MatVec):
            work["weight_words"] += ins.rows * ins.words_per_row
            work["post_rows"] += ins.rows
            work["lmul_ops"] += ins.rows  # the row's rescale (int_mul)
            continue
        counted = ins.fn in LMUL_FUNCTIONS
        if ins.first_only and counted:
            raise ValueError(f"a first-step-only {ins.fn!r} pass would make the steps' work differ")
        work["quant_elements"] += ins.n if ins.fn == "quant" else 0
        work["lmul_ops"] += ins.n if counted else 0
    return work
