"""cocotb bench: a bf16 -> bf16 table unit against its golden function, over every input.

Environment: TABLE_FN ("recip" or "rsqrt"), TABLE_SEED.
"""

import os

import cocotb
import numpy as np

from golden.formats import decode, encode
from golden.numerics import Numerics
from sim.benches.streams import check_stream


@cocotb.test()
async def every_bf16_input_matches_golden(dut):
    name = os.environ["TABLE_FN"]
    seed = int(os.environ.get("TABLE_SEED", "1"))
    x = np.random.default_rng(seed).permutation(1 << 16)
    expected = encode(getattr(Numerics, name)(decode(x, "bf16")), "bf16")
    def show(index, value):
        return f"x=0x{int(x[index]):04x}: expected 0x{int(expected[index]):04x}, got 0x{value:04x}"

    await check_stream(dut, x.tolist(), expected, show, name, seed)
