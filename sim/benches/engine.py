"""cocotb bench: the token engine with a small random model preloaded, a few token steps (state
persisting), argmax and every logit against golden.bitexact.

Environment: ENGINE_TOKENS (comma-separated token ids), ENGINE_SEED (the model's seed, see
``tiny_engine_model``), ENGINE_LOWER_BOUND (0/1).
"""

import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from golden.bitexact import BitExactModel
from golden.formats import encode
from golden.image import REGIONS
from sim.benches.streams import STALL_LIMIT, high, start_clock
from sim.engine_model import tiny_engine_model


async def _until(dut, name):
    for _ in range(STALL_LIMIT):
        await RisingEdge(dut.clk)
        if high(getattr(dut, name)):
            return
    raise AssertionError(f"{name} never rose in {STALL_LIMIT} cycles")


async def read_bytes(dut, addr, count):
    out = bytearray()
    dut.rdata__ready.value = 1
    for k in range(count):
        dut.bus__valid.value = 1
        dut.bus__payload.value = (addr + k) | (0 << 24)  # layout: addr[0:24], write[24], data[25:33]
        await _until(dut, "bus__ready")
        dut.bus__valid.value = 0
        while True:
            await RisingEdge(dut.clk)
            if high(dut.rdata__valid):
                out.append(int(dut.rdata__payload.value))
                break
    await RisingEdge(dut.clk)
    dut.rdata__ready.value = 0
    return bytes(out)


@cocotb.test()
async def engine_steps_match_golden(dut):
    tokens = [int(t) for t in os.environ.get("ENGINE_TOKENS", "5,17,3").split(",")]
    config, device = tiny_engine_model(int(os.environ.get("ENGINE_SEED", "3")),
                                       bool(int(os.environ.get("ENGINE_LOWER_BOUND", "1"))))
    golden = BitExactModel(device)
    for name in ("bus__valid", "step__valid", "done__ready", "rdata__ready", "reset"):
        getattr(dut, name).value = 0
    await start_clock(dut)
    state = golden.init_state()
    for tok in tokens:
        logits, top, state = golden.step(tok, state)
        dut.step__payload.value = tok
        dut.step__valid.value = 1
        await _until(dut, "step__ready")
        dut.step__valid.value = 0
        dut.done__ready.value = 1
        await _until(dut, "done__valid")
        got = int(dut.done__payload.value)
        await RisingEdge(dut.clk)
        dut.done__ready.value = 0
        assert got == top, f"token {tok}: argmax {got}, golden {top}"
        raw = await read_bytes(dut, REGIONS["logits"], 2 * config.vocab_size)
        want = encode(logits, "bf16").astype("<u2").tobytes()
        if raw != want:
            a, b = np.frombuffer(raw, "<u2"), np.frombuffer(want, "<u2")
            k = np.flatnonzero(a != b)
            raise AssertionError(f"token {tok}: logits differ at {k[:8].tolist()}: got {a[k[:8]]}, golden {b[k[:8]]}")
