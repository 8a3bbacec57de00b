"""BankedLutRam against a Python list: random writes and reads, one of each per cycle, every read
returning the word its address held LATENCY cycles before, across full and partial banks."""

import random

import pytest
from amaranth.sim import Simulator

from hw.lutram import BankedLutRam


@pytest.mark.parametrize("depth, bank_words", [(70, 32), (26, 32), (64, 16), (5, 1), (1, 4)])
def test_reads_return_the_word_of_latency_cycles_before(depth, bank_words):
    width = 11
    dut = BankedLutRam(width, depth, bank_words=bank_words)
    assert dut.banks == -(-depth // bank_words)
    model = [None] * depth  # None: never written, so not checked
    rng = random.Random(depth * 100 + bank_words)
    checked = [0]

    async def bench(ctx):
        pending = []  # (cycle the data is due, address, word it must be)
        for cycle in range(1500):
            w_en = rng.random() < 0.6
            w_addr, w_data = rng.randrange(depth), rng.getrandbits(width)
            r_addr = rng.randrange(depth)
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.w_addr, w_addr)
            ctx.set(dut.w_data, w_data)
            ctx.set(dut.r_addr, r_addr)
            # a read is of the memory as it is when its address copies are loaded (this edge),
            # before this cycle's write lands: reading the address being written is left out
            word = None if (w_en and w_addr == r_addr) else model[r_addr]
            pending.append((cycle + BankedLutRam.LATENCY, r_addr, word))
            if w_en:
                model[w_addr] = w_data
            await ctx.tick()
            got = ctx.get(dut.r_data)
            while pending and pending[0][0] == cycle + 1:
                _, addr, want = pending.pop(0)
                if want is not None:
                    assert got == want, f"cycle {cycle + 1}: word {addr} read {got:#x}, expected {want:#x}"
                    checked[0] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert checked[0] > 300


def test_the_read_is_a_word_written_one_cycle_before_it():
    # a word written in cycle t is read by an address presented in cycle t + 1
    dut = BankedLutRam(8, 40, bank_words=16)
    seen = []

    async def bench(ctx):
        ctx.set(dut.w_en, 1)
        ctx.set(dut.w_addr, 37)
        ctx.set(dut.w_data, 0xA5)
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        ctx.set(dut.r_addr, 37)
        for _ in range(BankedLutRam.LATENCY):
            await ctx.tick()
        seen.append(ctx.get(dut.r_data))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0xA5]


@pytest.mark.parametrize("args, kwargs, message", [
    ((0, 8), {}, "width"), ((8, 0), {}, "depth"), ((8, 8), {"bank_words": 24}, "power of two"),
    ((8, 8), {"bank_words": True}, "bank_words"), ((8.0, 8), {}, "width"),
])
def test_rejects_bad_parameters(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        BankedLutRam(*args, **kwargs)
