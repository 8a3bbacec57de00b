"""The ternary matrix-vector unit and the packed-trit decoder: Amaranth simulation with random
back-pressure on every stream against golden.numerics (exact integers) and golden.pack, measured
latency and throughput, and cocotb on Verilator and Icarus."""

import gc

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from golden.numerics import Numerics
from golden.pack import NUM_CODES, decode_table, pack_ternary, unpack_ternary
from hw.ternary_matvec import TRIT_NEG, TernaryMatVec, TritDecoder, acc_width, trit_word
from sim.cocotb_run import missing_simulator, run_bench
from sim.streams import collect, feed


# ---- stimulus -------------------------------------------------------------------------------------

def edge_shapes(lanes, max_rows, max_cols):
    """Shapes every run includes: K = 1, N = 1, K = max_cols, K around multiples of P."""
    ks = {1, max_cols, min(lanes, max_cols), min(lanes + 1, max_cols), max(lanes - 1, 1),
          min(2 * lanes + 3, max_cols)}
    shapes = [(1, 1), (max_rows, max_cols), (1, max_cols)]
    shapes += [(min(3, max_rows), k) for k in sorted(ks)]
    return shapes


def make_jobs(rng, shapes, extreme=False):
    """Random codes and ternary matrices (or all-(-127) codes times all-(-1) / all-(+1) rows)."""
    jobs = []
    for n, k in shapes:
        if extreme:
            q = np.full(k, -127)
            w = np.where(np.arange(n)[:, None] % 2 == 0, -1, 1) * np.ones((n, k), int)
        else:
            q = rng.integers(-127, 128, k)
            q[rng.random(k) < 0.1] = rng.choice([-127, 127])
            w = rng.integers(-1, 2, (n, k))
        jobs.append((q, w))
    return jobs


def weight_words(w, lanes, rng=None):
    """A matrix as the unit's weight words: row-major, ceil(K/P) words per row, column jP+i of a
    row in trit i of word j. With ``rng``, padding columns hold random 2-bit codes (ignored by the
    unit) and zeros are sometimes sent as the unused code 0b10 (documented to read as 0)."""
    n, k = w.shape
    nw = -(-k // lanes)
    codes = np.zeros((n, nw * lanes), dtype=np.int64)
    codes[:, :k] = w & 0b11
    if rng is not None:
        codes[:, k:] = rng.integers(0, 4, (n, nw * lanes - k))
        alias = (codes[:, :k] == 0) & (rng.random((n, k)) < 0.2)
        codes[:, :k][alias] = 0b10
    return [codes[r, j * lanes:(j + 1) * lanes].tolist() for r in range(n) for j in range(nw)]


def expected(jobs):
    out = []
    for q, w in jobs:
        out += [int(v) for v in Numerics.ternary_matvec(q, w)]
    return out


def code_beats(jobs, per_beat, rng=None):
    """The jobs' codes in beats of ``per_beat``; each vector's last beat padded with random codes
    (with ``rng``; the unit must ignore them) or zeros."""
    beats = []
    for q, _ in jobs:
        codes = [int(v) for v in q]
        pad = -len(codes) % per_beat
        codes += rng.integers(-127, 128, pad).tolist() if rng is not None else [0] * pad
        beats += [codes[j:j + per_beat] for j in range(0, len(codes), per_beat)]
    return beats


def simulate(dut, jobs, busy=0.3, seed=0, garbage=True, top=None, weights=None):
    """Run ``jobs`` through ``dut`` with random stalls on every stream; the results, in order."""
    rng = np.random.default_rng(seed)
    cmds = [{"rows": w.shape[0], "cols": w.shape[1]} for _, w in jobs]
    codes = code_beats(jobs, dut.codes_per_beat, rng if garbage else None)
    if weights is None:
        weights = (dut.w, [word for _, w in jobs for word in weight_words(w, dut.lanes, rng if garbage else None)])
    want = expected(jobs)
    results = []
    sim = Simulator(top or dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed(dut.cmd, cmds, busy=busy, seed=seed + 1))
    sim.add_testbench(feed(dut.a, codes, busy=busy, seed=seed + 2))
    sim.add_testbench(feed(weights[0], weights[1], busy=busy, seed=seed + 3, late=dut.late_weights))
    sim.add_testbench(collect(dut.o, len(want), results, busy=busy, seed=seed + 4))
    sim.run()
    return results, want


def mismatches(jobs, results, want):
    rows = [(j, r) for j, (_, w) in enumerate(jobs) for r in range(w.shape[0])]
    bad = []
    for (j, r), got, exp in zip(rows, results, want):
        if got != exp:
            q, w = jobs[j]
            bad.append(f"job {j} ({w.shape[0]}x{w.shape[1]}) row {r}: q[:6]={q[:6].tolist()} "
                       f"w[:6]={w[r, :6].tolist()} expected {exp}, got {got}")
    return bad


# ---- the matrix-vector unit -------------------------------------------------------------------------

@pytest.mark.parametrize("lanes, levels, max_rows, max_cols, per_beat", [
    (8, 1, 10, 37, 1),   # max_cols not a multiple of P
    (3, 1, 6, 11, 1),    # odd lane count: the tree passes an odd node up
    (16, 2, 7, 50, 1),   # two tree levels per register stage
    (12, 2, 5, 40, 1),   # non-power-of-two P with two levels per stage
    (1, 1, 4, 6, 1),     # one lane: no tree
    (15, 1, 6, 47, 5),   # five codes per beat (the engine's), K not a multiple of 5 nor of P
    (12, 1, 5, 30, 4),   # four codes per beat, three beats per word
    (6, 1, 4, 20, 6),    # one beat per word
])
def test_random_shapes_with_backpressure(lanes, levels, max_rows, max_cols, per_beat):
    rng = np.random.default_rng(lanes * 100 + levels)
    shapes = edge_shapes(lanes, max_rows, max_cols)
    shapes += [(int(rng.integers(1, max_rows + 1)), int(rng.integers(1, max_cols + 1))) for _ in range(8)]
    jobs = make_jobs(rng, shapes)
    dut = TernaryMatVec(lanes, max_rows, max_cols, levels_per_stage=levels, codes_per_beat=per_beat)
    results, want = simulate(dut, jobs, busy=0.3, seed=lanes)
    assert len(results) == len(want) == sum(n for n, _ in shapes)
    bad = mismatches(jobs, results, want)
    assert not bad, "\n".join(bad[:10])


@pytest.mark.parametrize("lanes, max_rows, max_cols, per_beat", [(15, 6, 47, 5), (8, 10, 37, 1)])
def test_late_weights_with_backpressure(lanes, max_rows, max_cols, per_beat):
    """``late_weights``: each word's trits arrive in the cycle after its transfer, as a
    ``CreditRing`` delivers them, and a decoy word in every other cycle; the same exact results."""
    rng = np.random.default_rng(lanes + 7)
    shapes = edge_shapes(lanes, max_rows, max_cols)
    shapes += [(int(rng.integers(1, max_rows + 1)), int(rng.integers(1, max_cols + 1))) for _ in range(6)]
    jobs = make_jobs(rng, shapes)
    dut = TernaryMatVec(lanes, max_rows, max_cols, codes_per_beat=per_beat, late_weights=True)
    results, want = simulate(dut, jobs, busy=0.3, seed=lanes + 1)
    assert len(results) == len(want) == sum(n for n, _ in shapes)
    bad = mismatches(jobs, results, want)
    assert not bad, "\n".join(bad[:10])


@pytest.mark.parametrize("lanes, max_cols", [(32, 512), (7, 45)])
def test_accumulator_extremes(lanes, max_cols):
    """All-(-127) codes against all-(-1) and all-(+1) rows at K = max_cols: +-127 K, the bound
    W_acc is sized for (17 bits for the ECP5 model's K = 512)."""
    dut = TernaryMatVec(lanes, 4, max_cols)
    assert dut.acc_width == acc_width(max_cols)
    jobs = make_jobs(None, [(4, max_cols), (1, max_cols), (2, 1)], extreme=True)
    jobs.append((np.full(max_cols, 127), -np.ones((3, max_cols), int)))
    results, want = simulate(dut, jobs, busy=0.2, seed=3)
    bound = 127 * max_cols
    assert want[:5] == [bound, -bound, bound, -bound, bound] and want[-3:] == [-bound] * 3
    bad = mismatches(jobs, results, want)
    assert not bad, "\n".join(bad[:10])
    # the extremes need every bit: one bit less could not hold them
    assert bound >= 1 << (dut.acc_width - 2) and bound < 1 << (dut.acc_width - 1)


def test_acc_width_is_the_contract_table():
    """docs/numerics.md, section 2: K = 256, 512, 2816, 6912 -> 16, 17, 20, 21 bits."""
    assert [acc_width(k) for k in (1, 256, 512, 2816, 6912)] == [8, 16, 17, 20, 21]
    for k in range(1, 3000):  # the formula, computed with exact integers
        bits = next(b for b in range(64) if (1 << b) >= 127 * k + 1)
        assert acc_width(k) == 1 + bits


def test_output_backpressure_stops_weights_at_a_row_boundary():
    """With o stalled, the unit takes whole rows until its FIFO entries are all reserved, then stops
    taking weights; nothing is lost when o resumes."""
    lanes = 8
    dut = TernaryMatVec(lanes, 64, 16)
    rng = np.random.default_rng(9)
    jobs = make_jobs(rng, [(40, 16), (30, 5)])
    words = [word for _, w in jobs for word in weight_words(w, lanes)]
    want = expected(jobs)
    taken, results = [], []

    async def weights(ctx):
        for word in words:
            ctx.set(dut.w.valid, 1)
            ctx.set(dut.w.payload, word)
            await ctx.tick().until(dut.w.ready)
            taken.append(word)
        ctx.set(dut.w.valid, 0)

    async def sink(ctx):
        await ctx.tick().repeat(200)  # stalled long enough to fill everything
        stalled_words = len(taken)
        assert stalled_words == 2 * dut.fifo_depth  # two words per row of the first matrix
        await collect(dut.o, len(want), results, busy=0.5, seed=5)(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed(dut.cmd, [{"rows": w.shape[0], "cols": w.shape[1]} for _, w in jobs]))
    sim.add_testbench(feed(dut.a, code_beats(jobs, dut.codes_per_beat)))
    sim.add_testbench(weights)
    sim.add_testbench(sink)
    sim.run()
    assert results == want


def measure(dut, jobs):
    """No stalls anywhere: the cycles of each accepted command, weight word and output."""
    cmds = [{"rows": w.shape[0], "cols": w.shape[1]} for _, w in jobs]
    codes = code_beats(jobs, dut.codes_per_beat)
    words = [word for _, w in jobs for word in weight_words(w, dut.lanes)]
    want = expected(jobs)
    log = {"cmd": [], "w": [], "o": []}
    results = []

    async def bench(ctx):
        ci = ai = wi = cycle = 0
        ctx.set(dut.o.ready, 1)
        while len(results) < len(want):
            for port, items, index in ((dut.cmd, cmds, ci), (dut.a, codes, ai), (dut.w, words, wi)):
                ctx.set(port.valid, index < len(items))
                if index < len(items):
                    ctx.set(port.payload, items[index])
            _, _, c_rdy, a_rdy, w_rdy, o_vld, o_val = await ctx.tick().sample(
                dut.cmd.ready, dut.a.ready, dut.w.ready, dut.o.valid, dut.o.payload)
            if c_rdy and ci < len(cmds):
                log["cmd"].append(cycle)
                ci += 1
            ai += bool(a_rdy and ai < len(codes))
            if w_rdy and wi < len(words):
                log["w"].append(cycle)
                wi += 1
            if o_vld:
                log["o"].append(cycle)
                results.append(o_val)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert results == want
    return log


def predicted_cycles(shapes, lanes, latency, per_beat=1, load_latency=3):
    """The docstring's timing: cycles from the first command's acceptance to the last accumulator.

    Matrix m's command is taken at c[m] (once the loader is idle and its bank is free), its B beats
    follow, and its bank is full at c[m] + B + load_latency; its W words stream from
    f[m] = max(c[m] + B + load_latency, e[m-1] + 1) to e[m] = f[m] + W - 1 (one word per cycle). Its bank is
    free again from e[m] + 1, so the next command but one needs c[m+2] >= e[m] + 1."""
    words = [n * -(-k // lanes) for n, k in shapes]
    beats = [-(-k // per_beat) for _, k in shapes]
    c, e = [0], []
    for m, (w, b) in enumerate(zip(words, beats)):
        if m:
            c.append(max(c[m - 1] + beats[m - 1] + 1, e[m - 2] + 1 if m >= 2 else 0))
        e.append(max(c[m] + b + load_latency, e[m - 1] + 1 if m else 0) + w - 1)
    return e[-1] + latency


@pytest.mark.parametrize("lanes, levels, latency, per_beat, load_latency", [
    (8, 1, 8, 1, 3), (32, 1, 10, 1, 3), (32, 2, 8, 1, 3), (10, 1, 9, 1, 3), (10, 1, 9, 5, 3),
    # six slices of 15 lanes: the beats go through a copy per group of slices, a cycle more
    (90, 1, 12, 5, 4)])
def test_latency_and_throughput(lanes, levels, latency, per_beat, load_latency):
    """The docstring's figures: latency from a row's last word to its accumulator; a lone matrix in
    ceil(K/C) + load_latency - 1 + N ceil(K/P) + latency cycles; back-to-back matrices at one word per
    cycle with the next vector's load hidden; one-word rows at one row per cycle; load-bound runs as
    predicted."""
    dut = TernaryMatVec(lanes, 64, 96, levels_per_stage=levels, codes_per_beat=per_beat)
    assert (dut.latency, dut.load_latency) == (latency, load_latency)
    rng = np.random.default_rng(lanes)
    report = []
    for shapes in ([(1, 1)], [(1, 96)], [(64, lanes)], [(24, 96)], [(24, 96), (60, 50), (64, 96), (64, 3)],
                   [(1, 96), (2, 40), (1, 96), (5, 7)]):
        jobs = make_jobs(rng, shapes)
        log = measure(dut, jobs)
        n0, k0 = shapes[0]
        words = [n * -(-k // lanes) for n, k in shapes]
        cycles = log["o"][-1] - log["cmd"][0]
        report.append(f"P={lanes}: {shapes}: {cycles} cycles from command to last accumulator, "
                      f"sum N*ceil(K/P) = {sum(words)}")
        if n0 == 1:
            assert log["o"][0] - log["w"][words[0] - 1] == latency
        beats = [-(-k // per_beat) for _, k in shapes]
        if all(w >= b + 1 for w, b in zip(words, beats[1:])):  # loads hidden
            assert log["w"][-1] - log["w"][0] + 1 == sum(words)  # one word per cycle throughout
            assert cycles == beats[0] + load_latency - 1 + sum(words) + latency
        assert cycles == predicted_cycles(shapes, lanes, latency, per_beat, load_latency)
    print("\n".join(report))


# ---- the decoder ------------------------------------------------------------------------------------

def run_decoder(dut, beats, busy, seed):
    out = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed(dut.i, beats, busy=busy, seed=seed))
    sim.add_testbench(collect(dut.o, len(beats), out, busy=busy, seed=seed + 1))
    sim.run()
    return [int(v.as_value().value) for v in out]  # trit arrays as bus integers


def test_decoder_every_byte():
    """All 243 codes decode as golden.pack's ROM; the 13 invalid bytes decode to zeros."""
    table = decode_table()
    dut = TritDecoder(1)
    out = run_decoder(dut, [[b] for b in range(256)], busy=0.3, seed=1)
    want = [trit_word(table[b]) for b in range(256)]
    bad = [(b, hex(g), hex(e)) for b, (g, e) in enumerate(zip(out, want)) if g != e]
    assert not bad, f"(byte, got, expected): {bad[:8]}"
    assert all(w == 0 for w in want[NUM_CODES:])


def test_decoder_packed_rows_against_golden_pack():
    """Random matrices packed by golden.pack, three bytes per beat, decoded back to the trits
    golden.pack.unpack_ternary gives (rows padded to whole beats, as the device image would)."""
    lanes = 3
    rng = np.random.default_rng(4)
    dut = TritDecoder(lanes)
    n, k = 9, 40
    per_beat = 5 * lanes
    k_pad = -(-k // per_beat) * per_beat
    w = np.zeros((n, k_pad), int)
    w[:, :k] = rng.integers(-1, 2, (n, k))
    packed = np.frombuffer(pack_ternary(w), np.uint8)
    beats = packed.reshape(-1, lanes).tolist()
    out = run_decoder(dut, beats, busy=0.4, seed=7)
    trits = np.array([[((v >> (2 * i)) & 3) for i in range(per_beat)] for v in out])
    trits = np.where(trits == TRIT_NEG, -1, trits).reshape(n, k_pad)
    np.testing.assert_array_equal(trits, unpack_ternary(packed.tobytes(), n, k_pad))
    np.testing.assert_array_equal(trits[:, :k], w[:, :k])


class PackedMatVec(Elaboratable):
    """TritDecoder(L) feeding TernaryMatVec(P = 5 L) directly."""

    def __init__(self, byte_lanes, max_rows, max_cols):
        self.dec = TritDecoder(byte_lanes)
        self.mv = TernaryMatVec(5 * byte_lanes, max_rows, max_cols)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dec = self.dec
        m.submodules.mv = self.mv
        wiring.connect(m, self.dec.o, self.mv.w)
        return m


def test_packed_weights_through_decoder_into_matvec():
    """Bytes from golden.pack (rows padded to whole P-trit words) -> decoder -> unit == golden."""
    byte_lanes, max_rows, max_cols = 2, 6, 33
    lanes = 5 * byte_lanes
    top = PackedMatVec(byte_lanes, max_rows, max_cols)
    rng = np.random.default_rng(11)
    shapes = edge_shapes(lanes, max_rows, max_cols) + [(4, 17), (6, 21)]
    jobs = make_jobs(rng, shapes)
    beats = []
    for _, w in jobs:
        n, k = w.shape
        padded = np.zeros((n, -(-k // lanes) * lanes), int)
        padded[:, :k] = w
        beats += np.frombuffer(pack_ternary(padded), np.uint8).reshape(-1, byte_lanes).tolist()
    results, want = simulate(top.mv, jobs, busy=0.3, seed=21, top=top, weights=(top.dec.i, beats))
    bad = mismatches(jobs, results, want)
    assert not bad, "\n".join(bad[:10])


# ---- parameters ------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("kwargs, match", [
    ({"lanes": 0, "max_rows": 4, "max_cols": 8}, "lanes"),
    ({"lanes": -8, "max_rows": 4, "max_cols": 8}, "lanes"),
    ({"lanes": 8.0, "max_rows": 4, "max_cols": 8}, "lanes"),
    ({"lanes": True, "max_rows": 4, "max_cols": 8}, "lanes"),
    ({"lanes": "8", "max_rows": 4, "max_cols": 8}, "lanes"),
    ({"lanes": 8, "max_rows": 0, "max_cols": 8}, "max_rows"),
    ({"lanes": 8, "max_rows": 4, "max_cols": 0}, "max_cols"),
    ({"lanes": 8, "max_rows": 4, "max_cols": None}, "max_cols"),
    ({"lanes": 8, "max_rows": 4, "max_cols": 8, "levels_per_stage": 3}, "levels_per_stage"),
    ({"lanes": 8, "max_rows": 4, "max_cols": 8, "levels_per_stage": 0}, "levels_per_stage"),
    ({"lanes": 8, "max_rows": 4, "max_cols": 8, "levels_per_stage": True}, "levels_per_stage"),
    ({"lanes": 8, "max_rows": 4, "max_cols": 8, "codes_per_beat": 3}, "multiple of codes_per_beat"),
    ({"lanes": 8, "max_rows": 4, "max_cols": 8, "codes_per_beat": 0}, "codes_per_beat"),
    ({"lanes": 8, "max_rows": 4, "max_cols": 8, "late_weights": 1}, "late_weights must be a bool"),
])
def test_matvec_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TernaryMatVec(**kwargs)
    gc.collect()  # the half-built component warns when collected: here, under the filter


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_decoder_and_helpers_reject_bad_parameters():
    for lanes in (0, -1, 1.5, False):
        with pytest.raises(ValueError, match="lanes"):
            TritDecoder(lanes)
    for k in (0, -5, 2.0, True):
        with pytest.raises(ValueError, match="K >= 1"):
            acc_width(k)
    with pytest.raises(ValueError, match="trit 1"):
        trit_word([0, 2])
    gc.collect()


# ---- cocotb -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.parametrize("lanes, max_rows, max_cols, jobs", [(8, 12, 45, 24), (32, 40, 160, 12)])
def test_cocotb_random_shapes(simulator, lanes, max_rows, max_cols, jobs):
    if why := missing_simulator(simulator):
        pytest.fail(why)
    dut = TernaryMatVec(lanes, max_rows, max_cols)
    env = {"TMV_LANES": str(lanes), "TMV_MAX_ROWS": str(max_rows), "TMV_MAX_COLS": str(max_cols),
           "TMV_LATENCY": str(dut.latency), "TMV_JOBS": str(jobs), "TMV_SEED": str(lanes)}
    run_bench(dut, f"ternary_matvec_p{lanes}", "ternary_matvec", simulator, env=env)
