"""End to end: the host runtime uploads a shipped model to the simulated board (the real core:
UART, link and token engine under Verilator, over TCP), then prompts it. Every argmax and every
logit that comes back equals the bit-exact golden model's, and the device's own 64-token
generation equals the golden greedy continuation."""

import json
from pathlib import Path

import numpy as np
import pytest

from golden.bitexact import BitExactModel
from host.session import open_session
from sim.cocotb_run import missing_simulator

ROOT = Path(__file__).resolve().parent.parent
PROMPT = b"def "
TOKENS = 64


@pytest.fixture(scope="module", params=["ulx3s-85f", "icebreaker"])
def session(request):
    """The shipped UP5K model on each board's core: the token engine (ULX3S, 195 lanes) and the
    compact engine (iCEBreaker, 10 lanes; in simulation the image need not fit the SPRAM)."""
    if why := missing_simulator("verilator"):
        pytest.fail(why)
    model = BitExactModel.from_pretrained(ROOT / "models" / "mmfree-up5k")
    with open_session(model, board=request.param, progress=False, log=lambda message: None) as s:
        yield s


def golden_run(model, prompt, count):
    """(tokens, logits per generated token): greedy from the zero state."""
    state = model.init_state()
    for token in prompt[:-1]:
        _, _, state = model.step(token, state)
    token, tokens, logits = prompt[-1], [], []
    for _ in range(count):
        lg, token, state = model.step(token, state)
        tokens.append(token)
        logits.append(lg)
    return tokens, logits


def test_steps_and_logits_equal_golden(session):
    want_tokens, want_logits = golden_run(session.model, list(PROMPT), TOKENS)
    device = session.device
    device.reset()
    for token in PROMPT[:-1]:
        device.step(token)
    token = PROMPT[-1]
    for k in range(TOKENS):
        token, logits = device.step(token, logits=True)
        assert token == want_tokens[k], f"token {k}: device {token}, golden {want_tokens[k]}"
        bad = np.flatnonzero(logits != want_logits[k])
        assert bad.size == 0, f"token {k}: logits differ at {bad[:8].tolist()}"


def test_device_generation_equals_golden(session):
    want_tokens, _ = golden_run(session.model, list(PROMPT), TOKENS)
    device = session.device
    device.reset()
    for token in PROMPT[:-1]:
        device.step(token)
    got = [token for token, _ in device.generate(PROMPT[-1], TOKENS)]
    assert got == want_tokens
    counters = device.counters()
    assert counters["steps"] >= TOKENS
    # counted by the device, or (the compact engine) its work per step times the steps
    layout = session.layout
    assert counters["weight_words"] == counters["steps"] * layout.weight_words
    assert counters["post_rows"] == counters["steps"] * sum(op.rows for op in layout.ops)


def test_upload_is_skipped_when_the_image_is_there(session):
    assert session.uploaded
    assert not session.device.upload(session.layout, session.model.device)


def test_cli_generate_on_the_simulated_board(capsys):
    """The main job's path: `mmfree generate` with no port starts a simulated board (the build is
    the one the tests above cached), uploads, and prints the golden greedy continuation."""
    from host.cli import main

    model_dir = ROOT / "models" / "mmfree-up5k"
    assert main(["generate", "--model", str(model_dir), "--prompt", "def ", "--max-tokens", "8",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want, _ = golden_run(BitExactModel.from_pretrained(model_dir), list(PROMPT), 8)
    assert out["tokens"] == want
    assert out["simulated"] and out["uploaded"]
    assert out["cycles_per_token"] > 0 and out["tokens_per_second_at_clock"] > 0
    # the ULX3S's recorded build carries the ECP5 model, not this one: no fmax to quote
    assert out["fmax_mhz"] is None and out["tokens_per_second_at_fmax"] is None


def test_cli_sim_board_serves_the_core():
    """`mmfree sim-board` prints a URL on which the device answers INFO with the model's layout."""
    import subprocess
    import sys

    from golden.config import ModelConfig
    from golden.image import DeviceLayout
    from hw.boards import get_board
    from host.device import Device, open_transport

    model_dir = ROOT / "models" / "mmfree-up5k"
    proc = subprocess.Popen([sys.executable, "-m", "host.cli", "sim-board", "--model", str(model_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:"), url
        transport = open_transport(url, timeout=0.05)
        try:
            device = Device(transport, timeout=30)
            device.check_layout(DeviceLayout(ModelConfig.load(model_dir), get_board("ulx3s-85f").lanes))
        finally:
            transport.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) in (0, -15)


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_core_on_its_uart_pins(simulator):
    """The shorter run, on Icarus too: the whole core (UART, link, engine) with a small model
    preloaded, INFO and two STEPs with logits sent bit by bit on its UART pins, every reply equal
    to the golden model's."""
    from golden.image import DeviceLayout
    from hw.top import DeviceCore
    from sim.cocotb_run import run_bench
    from sim.engine_model import TINY_LANES, tiny_engine_model

    if why := missing_simulator(simulator):
        pytest.fail(why)
    config, device = tiny_engine_model()
    layout = DeviceLayout(config, TINY_LANES)
    run_bench(DeviceCore(layout, divisor=4, image=layout.image(device)), "core", "core", simulator,
              env={"CORE_DIVISOR": "4", "CORE_TOKENS": "5,17"})
