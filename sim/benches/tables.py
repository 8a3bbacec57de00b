"""cocotb bench: a bf16 -> bf16 table unit against its golden function, over every input.

Environment: TABLE_FN ("recip" or "rsqrt"), TABLE_SEED.
"""

import os

import cocotb
import numpy as np

from golden.formats import decode, encode
from golden.numerics import Numerics
from sim.benches.streams import drive_and_collect, start_clock


@cocotb.test()
async def every_bf16_input_matches_golden(dut):
    name = os.environ["TABLE_FN"]
    seed = int(os.environ.get("TABLE_SEED", "1"))
    x = np.random.default_rng(seed).permutation(1 << 16)
    expected = encode(getattr(Numerics, name)(decode(x, "bf16")), "bf16")
    bad = []

    def check(index, value):
        if value != expected[index] and len(bad) < 10:
            bad.append(f"x=0x{int(x[index]):04x}: expected 0x{int(expected[index]):04x}, got 0x{value:04x}")

    await start_clock(dut)
    cycles = await drive_and_collect(dut, x.tolist(), "i", "o", busy_in=0.1, busy_out=0.1, seed=seed,
                                     on_output=check)
    dut._log.info(f"{name}: {len(x)} inputs in {cycles} cycles")
    assert not bad, f"{name}: mismatches (first {len(bad)}):\n" + "\n".join(bad)
