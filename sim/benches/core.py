"""cocotb bench: the whole device core (UART, link, token engine) with a small model preloaded,
driven bit by bit on its UART pins with frames from the host codec: INFO, then STEP with logits
for a few tokens, each reply checked against golden.bitexact.

Environment: CORE_DIVISOR (clocks per bit), CORE_TOKENS (comma-separated token ids).
"""

import json
import os
import struct

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from golden.bitexact import BitExactModel
from golden.formats import encode
from host import protocol as proto
from sim.benches.streams import STALL_LIMIT, start_clock
from sim.engine_model import TINY_LANES, tiny_engine_model


async def send_byte(dut, divisor, byte):
    for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:  # 8N1, least significant bit first
        dut.uart_rx.value = bit
        await ClockCycles(dut.clk, divisor)


async def receive_frame(dut, divisor):
    """Bytes from uart_tx up to and including a 0x00 delimiter, decoded to a reply."""
    data = bytearray()
    while True:
        for _ in range(STALL_LIMIT * 4):
            await RisingEdge(dut.clk)
            if int(dut.uart_tx.value) == 0:  # start bit
                break
        else:
            raise AssertionError("no reply from the device")
        await ClockCycles(dut.clk, divisor + divisor // 2)  # to the middle of bit 0
        byte = 0
        for k in range(8):
            byte |= int(dut.uart_tx.value) << k
            await ClockCycles(dut.clk, divisor)
        assert int(dut.uart_tx.value) == 1, "framing error on uart_tx"
        if byte == 0:
            return proto.parse_reply(proto.decode_frame(bytes(data)))
        data.append(byte)


async def call(dut, divisor, frame):
    for byte in frame:
        await send_byte(dut, divisor, byte)
    return await receive_frame(dut, divisor)


@cocotb.test()
async def core_answers_like_golden(dut):
    divisor = int(os.environ.get("CORE_DIVISOR", "4"))
    tokens = [int(t) for t in os.environ.get("CORE_TOKENS", "5,17").split(",")]
    config, device = tiny_engine_model()
    golden = BitExactModel(device)
    dut.uart_rx.value = 1
    await start_clock(dut)
    await ClockCycles(dut.clk, 20)

    reply = await call(dut, divisor, proto.info(1))
    assert reply.status == proto.Status.OK and reply.seq == 1
    info = proto.parse_info(reply.payload)
    assert info.vocab == config.vocab_size
    assert json.loads(info.blob)["model"]["lanes"] == TINY_LANES

    state = golden.init_state()
    for k, tok in enumerate(tokens):
        logits, top, state = golden.step(tok, state)
        reply = await call(dut, divisor, proto.step(2 + k, tok, logits=True))
        assert reply.status == proto.Status.OK, f"STEP {tok}: status 0x{reply.status:02x}"
        got = struct.unpack_from("<H", reply.payload)[0]
        assert got == top, f"token {tok}: argmax {got}, golden {top}"
        want = encode(logits, "bf16").astype("<u2").tobytes()
        assert reply.payload[2:] == want, f"token {tok}: logits differ"
