"""The compact engine's instruction set and its meaning (docs/compact_engine.md).

The compact engine is the token engine for small parts (the iCE40 UP5K): one arithmetic pipeline
shared by every element-wise operation, vectors in block RAMs, the model's image in one big
memory (SPRAM), a few ternary lanes. A token step is a straight-line program of two kinds of
instruction, generated from the model's ``DeviceLayout`` (``hw.compact.program``):

``Pass``
    ``dst[j] = fn(a[j], b[j])`` for j < n, one element per cycle through the pipeline, with an
    optional reduction of the results into a scalar register. A pass of n = 1 on scalar
    registers is how the quantiser's scalar arithmetic runs.
``MatVec``
    One BitLinear's ternary product: every row's integer dot product of the int8 codes in bank
    ``q`` with the row's packed weights, converted to bf16 and L-Mul'ed by a scale register,
    written to a bank (or two, rows alternating) or to the logits, with the argmax of the
    integer accumulators.

Every function is defined by the numerics contract's primitives (``golden.numerics``), so a
program run here computes the bit-exact model's bits when the program is right; the gateware
runs the same program and must compute the same bits. ``Machine`` is that reference: it runs a
program on the bytes of the device image, the way the gateware sees them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from golden.formats import decode, encode
from golden.image import DeviceLayout
from golden.numerics import Numerics, aligned_total, scale_aligned, top_exponent
from golden.pack import decode_table

__all__ = ["BANKS", "BANK_FORMATS", "FUNCTIONS", "REDUCTIONS", "SCALARS", "SCALAR_FORMATS", "Vec", "Mem", "Scalar", "Imm",
           "Pass", "MatVec", "Machine", "evaluate"]

#: Vector banks, one block RAM each: ``h`` (the state, L x d words) and ``w`` (its products) fp32,
#: ``q`` int8 codes, the others bf16. ``logits`` holds the head's rows.
BANKS = ("x", "i", "f", "r", "s", "u", "t", "p", "q", "h", "w", "logits")
#: The grid each bank's words hold: a write of anything else is a program error, since the
#: gateware would keep only the word's bits.
BANK_FORMATS = {bank: {"h": "fp32", "w": "fp32", "q": "int8"}.get(bank, "bf16") for bank in BANKS}
#: What each scalar register holds: a bf16 value, a bf16 exponent field (0..255), or a whole
#: word (an aligned sum, an integer below 2**32, or a bf16 value). The gateware keeps only those
#: bits (16, 8 or 32), so a write of anything else is a program error, as for the banks.
SCALAR_FORMATS = ("bf16", "exponent", "word", "bf16", "bf16", "bf16")
#: Scalar registers.
SCALARS = len(SCALAR_FORMATS)

#: fn -> (operands, what it computes). Each is one of the pipeline's paths (docs/compact_engine.md):
#: the L-Mul (fp32: on bf16 operands it is the bf16 L-Mul), the adder (fp32, then rounded to bf16
#: or not), the rounding alone, the sigmoid's segment select into the adder, the tables.
FUNCTIONS = {
    "zero": (0, "0"),
    "copy": (1, "a"),
    "mul": (2, "a * b, an fp32 L-Mul"),
    "add": (2, "a + b rounded to bf16"),
    "add32": (2, "a + b in fp32"),
    "sub32": (2, "a - b in fp32"),
    "round16": (1, "fp32 a rounded to bf16"),
    "sigmoid": (1, "sigmoid(a)"),
    "sigmoid_neg": (1, "sigmoid(-a)"),
    "quant": (2, "int8 of a * b"),
    "rsqrt": (1, "1 / sqrt(a)"),
    "recip": (1, "1 / a"),
    "int_mul": (2, "integer a converted to bf16, times b (a MatVec's rows)"),
    "int_pow2": (2, "integer a times 2**(b - 150) rounded to bf16 (an aligned sum, b its exponent field)"),
}
#: Reductions of a pass's results into a scalar register.
REDUCTIONS = ("absmax", "top_exponent", "aligned_sum")


@dataclasses.dataclass(frozen=True)
class Vec:
    """Elements ``base, base + 1, ...`` of a bank."""
    bank: str
    base: int = 0

    def __post_init__(self):
        if self.bank not in BANKS:
            raise ValueError(f"unknown bank {self.bank!r}; banks are {BANKS}")


@dataclasses.dataclass(frozen=True)
class Mem:
    """Words of the device image (``golden.image`` regions) from word ``base`` on: ``pg`` words
    give their low (``half="lo"``, the gain or c) or high half (``"hi"``, pre or eps), ``aux`` and
    ``embedding`` words are bf16. ``per_token``: the base moves by d words per token id."""
    region: str
    base: int
    half: str | None = None
    per_token: bool = False

    def __post_init__(self):
        if self.region not in ("pg", "aux", "embedding"):
            raise ValueError(f"operands come from the pg, aux or embedding region, not {self.region!r}")
        if (self.region == "pg") != (self.half in ("lo", "hi")):
            raise ValueError("pg words need half='lo' or 'hi'; other regions take none")


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A scalar register: broadcast when an operand, written once when a destination."""
    index: int

    def __post_init__(self):
        if not 0 <= self.index < SCALARS:
            raise ValueError(f"scalar register {self.index} out of range [0, {SCALARS})")


@dataclasses.dataclass(frozen=True)
class Imm:
    """A bf16 constant operand (exact in bf16)."""
    value: float

    def __post_init__(self):
        if float(decode(encode(self.value, "bf16"), "bf16")) != self.value:
            raise ValueError(f"immediate {self.value!r} is not exact in bf16")


@dataclasses.dataclass(frozen=True)
class Pass:
    fn: str
    n: int
    dst: Vec | Scalar | None
    a: Vec | Mem | Scalar | None = None
    b: Vec | Mem | Scalar | Imm | None = None
    reduce: str | None = None
    into: Scalar | None = None  # the reduction's register
    exponent: Scalar | None = None  # aligned_sum: the register holding the top exponent field
    first_only: bool = False  # only in the first step after a reset (clearing the state)

    def __post_init__(self):
        if self.fn not in FUNCTIONS:
            raise ValueError(f"unknown function {self.fn!r}; functions are {sorted(FUNCTIONS)}")
        arity = FUNCTIONS[self.fn][0]
        if self.n < 1:
            raise ValueError(f"a pass has at least one element, got n = {self.n}")
        if (self.a is None) != (arity == 0) or (self.b is not None and arity < 2):
            raise ValueError(f"{self.fn} takes {arity} operand(s)")
        if self.b is None and arity == 2:
            raise ValueError(f"{self.fn} takes two operands")
        if self.fn in ("int_mul", "int_pow2") and not isinstance(self.b, Scalar):
            raise ValueError(f"{self.fn} takes b from a scalar register (the pipeline reads it late)")
        if (self.reduce is None) != (self.into is None):
            raise ValueError("a reduction needs a register (into=) and a register needs a reduction")
        if self.reduce is not None and self.reduce not in REDUCTIONS:
            raise ValueError(f"unknown reduction {self.reduce!r}; reductions are {REDUCTIONS}")
        if (self.reduce == "aligned_sum") != (self.exponent is not None):
            raise ValueError("aligned_sum, and only aligned_sum, takes exponent=")
        if self.dst is None and self.reduce is None:
            raise ValueError("a pass with no destination must reduce")
        if isinstance(self.dst, Scalar) and self.n != 1:
            raise ValueError("a scalar register is the destination of a pass of one element only")
        vec_banks = [o.bank for o in (self.a, self.b) if isinstance(o, Vec)]
        if len(vec_banks) == 2 and vec_banks[0] == vec_banks[1] and self.a != self.b:
            raise ValueError(f"both operands from bank {vec_banks[0]!r}: a bank has one read port")
        mems = [o for o in (self.a, self.b) if isinstance(o, Mem)]
        if len(mems) == 2:
            raise ValueError("both operands from the image memory: it has one read port")


@dataclasses.dataclass(frozen=True)
class MatVec:
    rows: int
    cols: int
    word_base: int
    words_per_row: int
    scale: Scalar
    dst: Vec  # rows 0, 1, 2, ... (or the even rows when ``odd`` is given)
    odd: Vec | None = None  # the odd rows, when they go to a bank of their own
    argmax: bool = False  # the head: argmax of the integer accumulators, lowest index on ties

    def __post_init__(self):
        if self.odd is not None and self.rows % 2:
            raise ValueError("rows split into even and odd need an even row count")


def _is_bf16(nx, values) -> bool:
    return np.array_equal(nx.round(values), values)


def evaluate(fn: str, a, b=None, nx: Numerics | None = None) -> np.ndarray:
    """What function ``fn`` computes of operand values ``a`` and ``b`` (arrays on their grids):
    the meaning of a pass, shared by ``Machine`` and the gateware's tests."""
    nx = nx if nx is not None else Numerics()
    if fn == "zero":
        out = np.zeros(np.shape(a))
    elif fn == "copy":
        out = a
    elif fn == "mul":  # the fp32 L-Mul; on bf16 operands its upper half is the bf16 L-Mul
        out = nx.mul(a, b) if _is_bf16(nx, a) and _is_bf16(nx, b) else nx.mul(a, b, "fp32")
    elif fn == "add":
        out = nx.add(a, b)
    elif fn == "add32":
        out = nx.add(a, b, "fp32")
    elif fn == "sub32":
        out = nx.sub(a, b, "fp32")
    elif fn == "round16":
        out = nx.round(a)
    elif fn in ("sigmoid", "sigmoid_neg"):
        out = nx.sigmoid(-np.asarray(a) if fn == "sigmoid_neg" else a)
    elif fn == "quant":
        out = nx.to_int8(nx.mul(a, b))
    elif fn == "rsqrt":
        out = nx.rsqrt(a)
    elif fn == "recip":
        out = nx.recip(a)
    elif fn == "int_mul":
        out = nx.mul(nx.from_int(a), b)
    elif fn == "int_pow2":
        out = scale_aligned(a, np.asarray(b, np.int64))
    else:
        raise ValueError(f"unknown function {fn!r}; functions are {sorted(FUNCTIONS)}")
    return np.asarray(out, np.float64)


class Machine:
    """The reference machine: runs programs on a device image as the gateware would.

    ``image`` is ``DeviceLayout.image(device)`` (the bytes the host uploads). Banks hold float64
    values on their format's grid (``q``: integers); the state bank ``h`` persists across steps
    until ``reset``.
    """

    def __init__(self, layout: DeviceLayout, image: dict[str, bytes], numerics: Numerics | None = None):
        self.layout, self.nx = layout, numerics if numerics is not None else Numerics()
        c = layout.config
        size = max(c.hidden_size, 2 * c.intermediate_size, c.vocab_size, c.num_hidden_layers * c.hidden_size)
        self.banks = {name: np.zeros(size) for name in BANKS}
        self.scalars = np.zeros(SCALARS)
        self.first = True
        self.argmax = None
        self._weights = np.frombuffer(image["weights"], np.uint8).reshape(-1, layout.word_bytes)
        self._words = {
            "pg": np.frombuffer(image["pg"], "<u4").astype(np.int64),
            "aux": np.frombuffer(image["aux"], "<u2").astype(np.int64),
            "embedding": np.frombuffer(image["embedding"], "<u2").astype(np.int64),
        }

    def reset(self):
        self.first = True

    def run(self, program, token: int):
        """One token step: returns (logits [vocab] bf16 values, argmax)."""
        self.token = int(token)
        for instr in program:
            if isinstance(instr, MatVec):
                self._matvec(instr)
            elif not instr.first_only or self.first:
                self._pass(instr)
        self.first = False
        return self.banks["logits"][:self.layout.config.vocab_size].copy(), self.argmax

    # -- operands ------------------------------------------------------------------------------

    def _read(self, operand, n):
        if operand is None:
            return None
        if isinstance(operand, Vec):
            return self.banks[operand.bank][operand.base:operand.base + n]
        if isinstance(operand, Scalar):
            return self.scalars[operand.index:operand.index + 1]
        if isinstance(operand, Imm):
            return np.full(n, operand.value)
        base = operand.base + (self.token * self.layout.config.hidden_size if operand.per_token else 0)
        words = self._words[operand.region][base:base + n]
        if operand.region == "pg":
            words = words & 0xFFFF if operand.half == "lo" else words >> 16
        return decode(words, "bf16")

    def _set_scalar(self, index: int, value, integer: bool = False):
        """Scalar register ``index`` := ``value``: a pass's result (kept as its bit pattern, so a
        bf16 register takes bf16 values and a word register fp32 ones) or, with ``integer``, a
        reduction's integer (an exponent field, an aligned sum). A write the gateware would
        not keep as it is raises ValueError."""
        fmt = SCALAR_FORMATS[index]
        value = float(value)
        if integer:
            bound = 256 if fmt == "exponent" else 1 << 32
            on_grid = fmt != "bf16" and value == int(value) and 0 <= value < bound
        else:
            on_grid = fmt != "exponent" and bool(np.isfinite(value)) and \
                self.nx.round(np.array([value]), "fp32" if fmt == "word" else "bf16")[0] == value
        if not on_grid:
            raise ValueError(f"a pass writes {value!r} into scalar {index}, which keeps only {fmt} values"
                             + (" from reductions" if fmt == "exponent" else ""))
        self.scalars[index] = value

    def _write(self, dst, values):
        if isinstance(dst, Scalar):
            self._set_scalar(dst.index, values[0])
        elif dst is not None:
            fmt = BANK_FORMATS[dst.bank]
            on_grid = (np.all((values == np.round(values)) & (np.abs(values) <= 127)) if fmt == "int8"
                       else np.array_equal(self.nx.round(values, fmt), values))
            # (a bf16 bank keeps the upper half of the pipeline's fp32 word: a program may write
            # only what is exact there)
            if not on_grid:
                raise ValueError(f"a pass writes values that are not {fmt} into bank {dst.bank!r}")
            self.banks[dst.bank][dst.base:dst.base + len(values)] = values

    # -- the instructions ----------------------------------------------------------------------

    def _pass(self, p: Pass):
        nx = self.nx
        a, b = self._read(p.a, p.n), self._read(p.b, p.n)
        out = evaluate(p.fn, a, b, nx) if p.fn != "zero" else np.zeros(p.n)
        self._write(p.dst, out)
        if p.reduce == "absmax":
            self._set_scalar(p.into.index, nx.absmax(out)[0])
        elif p.reduce == "top_exponent":
            self._set_scalar(p.into.index, top_exponent(out)[0], integer=True)
        elif p.reduce == "aligned_sum":
            self._set_scalar(p.into.index, aligned_total(out, int(self.scalars[p.exponent.index]))[0],
                             integer=True)

    def _matvec(self, mv: MatVec):
        nx = self.nx
        words = self._weights[mv.word_base:mv.word_base + mv.rows * mv.words_per_row]
        trits = decode_table()[words].reshape(mv.rows, -1)[:, :mv.cols]
        codes = self.banks["q"][:mv.cols]
        acc = trits.astype(np.int64) @ codes.astype(np.int64)
        out = nx.mul(nx.from_int(acc), self.scalars[mv.scale.index])
        if mv.odd is None:
            self._write(mv.dst, out)
        else:
            self._write(mv.dst, out[0::2])
            self._write(mv.odd, out[1::2])
        if mv.argmax:
            self.argmax = int(np.argmax(acc))
