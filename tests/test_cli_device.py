"""The device commands of ``mmfree`` (generate with sampling and --output, info, upload, bench)
against simulated boards of a small byte-level model (10 lanes: built once, then cached), and
every expected failure: a one-line error, exit 1, no traceback, the text so far kept."""

import json
import math
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest

from golden.bitexact import BitExactModel
from golden.image import DeviceLayout
from hw.top import SIM_DIVISOR, DeviceCore
from host.cli import main
from host.latency import SYSFS_ENV, latency_timer_ms, latency_warning
from host.sampling import Sampler
from sim.board import SimBoard
from sim.cocotb_run import missing_simulator
from synthetic import small_config, write_random_checkpoint

LANES = 10
CONFIG = small_config(vocab_size=256, hidden_size=16, num_hidden_layers=2, intermediate_size=32)
PROMPT = "hi!"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    write_random_checkpoint(path, CONFIG, seed=5)
    return path


@pytest.fixture(scope="module")
def golden(model_dir):
    return BitExactModel.from_pretrained(model_dir)


def start_board():
    if why := missing_simulator("verilator"):
        pytest.fail(why)
    # the name the CLI gives a simulated ulx3s-85f, so all boards here share one cached build
    return SimBoard(DeviceCore(DeviceLayout(CONFIG, LANES), SIM_DIVISOR), SIM_DIVISOR,
                    name="mmfree_ulx3s_85f", quiet=True).start()


@pytest.fixture(scope="module")
def board():
    sim = start_board()
    yield sim
    sim.close()


def run(capsys, argv):
    """(exit code, stdout, stderr) of the CLI run in this process."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, argv):
    code, out, err = run(capsys, argv + ["--json"])
    assert code == 0, err
    return json.loads(out)


def assert_one_line_error(code, err, *fragments):
    assert code == 1
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("mmfree: error:"), err
    for fragment in fragments:
        assert fragment in last, last


# -- an independent reference for sampling: the rule in host/sampling.py's docstring, spelled out
# in plain Python, applied to the golden model's logits ------------------------------------------

def reference_sample(logits, temperature, top_k, u):
    z = [float(v) / temperature for v in logits]
    order = sorted(range(len(z)), key=lambda i: (-z[i], i))  # largest first, lower id on ties
    kept = set(order[:top_k] if top_k else order)
    top = max(z[i] for i in kept)
    weights = [math.exp(z[i] - top) if i in kept else 0.0 for i in range(len(z))]
    total, acc = sum(weights), 0.0
    for i, w in enumerate(weights):
        acc += w / total
        if acc > u:
            return i
    return max(kept)


def reference_run(model, prompt, count, temperature, top_k, seed):
    draws = np.random.Generator(np.random.PCG64(seed))
    state = model.init_state()
    for token in prompt[:-1]:
        _, _, state = model.step(token, state)
    token, out = prompt[-1], []
    for _ in range(count):
        logits, _, state = model.step(token, state)
        token = reference_sample(logits, temperature, top_k, draws.random())
        out.append(token)
    return out


def golden_greedy(model, prompt, count):
    state = model.init_state()
    for token in prompt[:-1]:
        _, _, state = model.step(token, state)
    token, out = prompt[-1], []
    for _ in range(count):
        _, token, state = model.step(token, state)
        out.append(token)
    return out


# -- sampling ------------------------------------------------------------------------------------

def test_sampler_rule():
    logits = np.array([1.0, 3.0, 3.0, -2.0, 0.5])
    assert Sampler(1.0, top_k=1, seed=0)(logits) == 1  # top-1 is the argmax, lower id on the tie
    p = Sampler(0.5, top_k=3, seed=0).probabilities(logits)
    z = np.exp((logits - 3.0) / 0.5)
    want = np.where([True, True, True, False, False], z, 0) / (z[0] + z[1] + z[2])
    np.testing.assert_allclose(p, want, rtol=1e-12)
    draws = [Sampler(0.7, seed=9)(logits) for _ in range(3)]
    assert len(set(draws)) == 1  # a fresh sampler with the same seed draws the same first token
    with pytest.raises(ValueError, match="temperature"):
        Sampler(0.0)


def test_sampling_is_reproducible_and_follows_the_golden_logits(capsys, board, model_dir, golden):
    argv = ["generate", "--model", str(model_dir), "--port", board.url, "--prompt", PROMPT,
            "--max-tokens", "12", "--temperature", "0.9", "--top-k", "40", "--seed", "1234"]
    first = run_json(capsys, argv)
    second = run_json(capsys, argv)
    assert first["mode"] == "sample" and first["seed"] == 1234
    assert first["tokens"] == second["tokens"]
    want = reference_run(golden, list(PROMPT.encode()), 12, 0.9, 40, 1234)
    assert first["tokens"] == want
    other = run_json(capsys, argv[:-1] + ["99"])
    assert other["tokens"] == reference_run(golden, list(PROMPT.encode()), 12, 0.9, 40, 99)
    assert other["tokens"] != want


def test_greedy_stays_on_the_device(capsys, board, model_dir, golden, tmp_path):
    out_file = tmp_path / "out.txt"
    code, out, err = run(capsys, ["generate", "--model", str(model_dir), "--port", board.url,
                                  "--prompt", PROMPT, "--max-tokens", "10", "--output", str(out_file)])
    assert code == 0, err
    want = golden_greedy(golden, list(PROMPT.encode()), 10)
    assert out_file.read_bytes() == PROMPT.encode() + bytes(want)
    assert "greedy" in err
    result = run_json(capsys, ["generate", "--model", str(model_dir), "--port", board.url,
                               "--prompt", PROMPT, "--max-tokens", "10"])
    assert result["mode"] == "greedy" and result["tokens"] == want


def test_sampling_options_need_a_temperature(capsys, model_dir):
    code, _, err = run(capsys, ["generate", "--model", str(model_dir), "--prompt", "x", "--seed", "3"])
    assert_one_line_error(code, err, "--temperature")
    code, _, err = run(capsys, ["generate", "--model", str(model_dir), "--prompt", "x",
                                "--temperature", "1", "--backend", "float"])
    assert_one_line_error(code, err, "--backend device")


# -- info, upload, bench -------------------------------------------------------------------------

def test_upload_then_info(capsys, board, model_dir, golden):
    layout = DeviceLayout(CONFIG, LANES)
    up = run_json(capsys, ["upload", "--model", str(model_dir), "--port", board.url, "--force"])
    assert up["uploaded"] and up["lanes"] == LANES
    assert up["image_bytes"] == sum(len(v) for v in layout.image(golden.device).values())
    assert up["upload_bytes_per_second"] > 0
    again = run_json(capsys, ["upload", "--model", str(model_dir), "--port", board.url])
    assert not again["uploaded"]  # same hash on the device: skipped

    info = run_json(capsys, ["info", "--port", board.url, "--model", str(model_dir)])
    assert info["dimensions"] == layout.describe()
    assert info["lanes"] == LANES and info["vocab"] == 256 and info["protocol"] == 1
    assert info["loaded_image_sha256"] == layout.image_hash(golden.device)
    assert info["model_loaded"] and info["model_fits"] and info["model_is_loaded"]

    other = model_dir.parent / "other-weights"
    write_random_checkpoint(other, CONFIG, seed=6)  # same dimensions, other weights
    info = run_json(capsys, ["info", "--port", board.url, "--model", str(other)])
    assert info["model_fits"] and not info["model_is_loaded"]

    code, out, err = run(capsys, ["info", "--port", board.url])
    assert code == 0 and f"lanes {LANES}" in out and "image sha256" in out


def test_info_without_port_or_model(capsys):
    code, _, err = run(capsys, ["info"])
    assert_one_line_error(code, err, "--model")


def test_bench(capsys, board, model_dir, tmp_path, monkeypatch):
    greedy = run_json(capsys, ["generate", "--model", str(model_dir), "--port", board.url,
                               "--prompt", PROMPT, "--max-tokens", "4"])
    # no recorded build of this model: no rate at an fmax
    assert greedy["fmax_mhz"] is None and greedy["tokens_per_second_at_fmax"] is None
    # with one (a stand-in record of this model and lanes), the rate at its fmax
    record = tmp_path / "recorded.json"
    record.write_text(json.dumps({"boards": {"ulx3s-85f": {
        "core": f"token engine for {model_dir} ({LANES} lanes)", "model": str(model_dir),
        "fmax_mhz": 90.0, "clock_mhz": 90.0, "commit": "abc1234", "ff": 1234}}}))
    monkeypatch.setattr("host.build.RECORDED", record)
    code, _, err = run(capsys, ["generate", "--model", str(model_dir), "--port", board.url,
                                "--prompt", PROMPT, "--max-tokens", "4"])
    cycles = greedy["cycles_per_token"]
    assert code == 0 and f"{90e6 / cycles:,.0f} tokens/s at its recorded build's fmax (90.0 MHz, commit abc1234" in err
    assert "1,234 clocked cells, the flip-flops of the build at abc1234" in err  # the energy estimate's
    result = run_json(capsys, ["bench", "--model", str(model_dir), "--port", board.url,
                               "--tokens", "20", "--link-bytes", "2303"])
    assert result["tokens"] == 20 and result["device_steps"] == 20
    # the engine's schedule does not depend on the tokens: the same cycles per token as generate
    assert result["cycles_per_token"] == greedy["cycles_per_token"]
    assert result["tokens_per_second_at_clock"] == pytest.approx(75e6 / result["cycles_per_token"])  # the ULX3S clock
    assert result["fmax_mhz"] == 90.0 and result["tokens_per_second_at_fmax"] == pytest.approx(90e6 / cycles)
    assert result["link_bytes"] == 2300  # whole 4-byte words (lcm of 4 and the 2-byte weight word)
    # the simulated UART's line rate is its simulated clock / 4 cycles per bit / 10 bits per byte,
    # and no link carries more than its line rate
    assert 0 < result["link_efficiency"] <= 1.0
    assert result["link_bytes_per_second"] <= result["line_rate_bytes_per_second"]
    assert result["tokens_per_second_wall"] > 0
    # the rewrite kept the image: generation still follows the model
    assert run_json(capsys, ["generate", "--model", str(model_dir), "--port", board.url,
                             "--prompt", PROMPT, "--max-tokens", "4"])["tokens"] == greedy["tokens"]


# -- the FTDI latency timer ----------------------------------------------------------------------

def fake_sysfs(root, name, ms):
    path = root / "bus" / "usb-serial" / "devices" / name
    path.mkdir(parents=True)
    (path / "latency_timer").write_text(f"{ms}\n")


def test_latency_timer_is_read_from_sysfs(tmp_path):
    fake_sysfs(tmp_path, "ttyUSB3", 16)
    fake_sysfs(tmp_path, "ttyUSB4", 1)
    assert latency_timer_ms("/dev/ttyUSB3", tmp_path) == 16
    assert latency_timer_ms("/dev/ttyUSB4", tmp_path) == 1
    assert latency_timer_ms("/dev/ttyUSB5", tmp_path) is None  # no such device in sysfs
    assert latency_timer_ms("socket://127.0.0.1:5", tmp_path) is None
    warning = latency_warning("/dev/ttyUSB3", True, tmp_path)
    assert "16 ms" in warning and "echo 1 | sudo tee /sys/bus/usb-serial/devices/ttyUSB3/latency_timer" in warning
    assert latency_warning("/dev/ttyUSB3", False, tmp_path) is None  # GENERATE: no round trip per token
    assert latency_warning("/dev/ttyUSB4", True, tmp_path) is None


def test_cli_warns_about_the_latency_timer_when_sampling(capsys, model_dir, tmp_path, monkeypatch):
    fake_sysfs(tmp_path, "ttyUSB9", 16)
    monkeypatch.setenv(SYSFS_ENV, str(tmp_path))
    base = ["generate", "--model", str(model_dir), "--port", "/dev/ttyUSB9", "--prompt", "x"]
    code, _, err = run(capsys, base + ["--temperature", "1"])
    assert "latency timer of ttyUSB9 is 16 ms" in err and "udev" in err
    assert_one_line_error(code, err, "cannot open /dev/ttyUSB9")  # then no such port here
    code, _, err = run(capsys, base)
    assert "latency timer" not in err


# -- bad input and faults ------------------------------------------------------------------------

def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_no_device_at_the_port(capsys, model_dir):
    url = f"socket://127.0.0.1:{closed_port()}"
    for command in (["generate", "--prompt", "x"], ["upload"], ["bench"]):
        code, _, err = run(capsys, [command[0], "--model", str(model_dir), "--port", url, *command[1:]])
        assert_one_line_error(code, err, f"cannot open {url}")


class GarbageServer:
    """A TCP server that answers every read with bytes of some other protocol."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        conn, _ = self.sock.accept()
        with conn:
            while data := conn.recv(4096):
                conn.sendall(b"AT+OK\r\n" * (len(data) + 1))


def test_the_wrong_device(capsys, model_dir):
    server = GarbageServer()
    code, _, err = run(capsys, ["info", "--port", server.url, "--timeout", "0.5"])
    assert_one_line_error(code, err, "not mmfree frames")
    server.sock.close()


@pytest.mark.parametrize("damage", ["missing", "truncated", "corrupt"])
def test_bad_model_files_with_a_port(capsys, model_dir, tmp_path, damage):
    # the model is read and checked before the port is opened: a closed port is never reached
    bad = tmp_path / "bad"
    write_random_checkpoint(bad, CONFIG, seed=1)
    weights = bad / "model.safetensors"
    data = weights.read_bytes()
    if damage == "missing":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(data[: len(data) // 3])
    else:
        weights.write_bytes(b"\xff" * 16 + data[16:])
    url = f"socket://127.0.0.1:{closed_port()}"
    for command in (["generate", "--prompt", "x"], ["upload"]):
        code, _, err = run(capsys, [command[0], "--model", str(bad), "--port", url, *command[1:]])
        assert_one_line_error(code, err, "model.safetensors")


def test_a_model_too_large_or_different(capsys, board, tmp_path):
    larger = tmp_path / "larger"
    write_random_checkpoint(larger, small_config(vocab_size=256, hidden_size=32, num_hidden_layers=2,
                                                 intermediate_size=32), seed=2)
    code, _, err = run(capsys, ["generate", "--model", str(larger), "--port", board.url, "--prompt", "x"])
    big_words = DeviceLayout(small_config(vocab_size=256, hidden_size=32, num_hidden_layers=2,
                                          intermediate_size=32), LANES).weight_words
    assert_one_line_error(code, err, "too large for this bitstream",
                          f"weight_words {big_words} > {DeviceLayout(CONFIG, LANES).weight_words}")
    smaller = tmp_path / "smaller"
    write_random_checkpoint(smaller, small_config(vocab_size=256, hidden_size=16, num_hidden_layers=1,
                                                  intermediate_size=32), seed=2)
    code, _, err = run(capsys, ["upload", "--model", str(smaller), "--port", board.url])
    assert_one_line_error(code, err, "does not match the bitstream", "layers: model 1 vs device 2")


def kill_when_written(path, at_least, action):
    """A thread that runs ``action`` once ``path`` holds ``at_least`` bytes."""
    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size >= at_least:
                return action()
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("fault", ["cable pulled", "device reset"])
def test_fault_mid_generation_keeps_the_text(capsys, model_dir, golden, tmp_path, fault):
    sim = start_board()
    try:
        out_file = tmp_path / "out.bin"
        if fault == "cable pulled":  # the board's process dies: the TCP link drops
            action = lambda: os.kill(sim._proc.pid, signal.SIGKILL)  # noqa: E731
        else:  # the board goes silent mid-token, as one does while it resets and reconfigures
            action = lambda: os.kill(sim._proc.pid, signal.SIGSTOP)  # noqa: E731
        watcher = kill_when_written(out_file, len(PROMPT) + 6, action)
        code, out, err = run(capsys, ["generate", "--model", str(model_dir), "--port", sim.url,
                                      "--prompt", PROMPT, "--max-tokens", "5000", "--temperature", "1",
                                      "--seed", "5", "--output", str(out_file), "--timeout", "2", "--json"])
        watcher.join(timeout=5)
    finally:
        if sim.running:
            os.kill(sim._proc.pid, signal.SIGCONT)
        sim.close()
    reason = "check the cable" if fault == "cable pulled" else "stopped answering"
    assert_one_line_error(code, err, reason, "generated tokens")
    partial = json.loads(out)  # the tokens so far, for scripts
    text = out_file.read_bytes()
    assert text[:len(PROMPT)] == PROMPT.encode() and len(text) >= len(PROMPT) + 6
    assert list(text[len(PROMPT):]) == partial["tokens"]
    assert f"after {len(partial['tokens'])} generated tokens" in err
    assert partial["tokens"] == reference_run(golden, list(PROMPT.encode()), len(partial["tokens"]), 1.0,
                                              None, 5)


class FlippingProxy:
    """A TCP proxy to the board that inverts one bit of the host's bytes at the offsets
    ``flip(offset)`` picks (counted over everything the host sends)."""

    def __init__(self, url, flip):
        self.target = int(url.rsplit(":", 1)[1])
        self.flip, self.flipped = flip, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.sock.getsockname()[1]}"
        self.done = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        client, _ = self.sock.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target))

        def back():
            while data := upstream.recv(4096):
                client.sendall(data)

        threading.Thread(target=back, daemon=True).start()
        sent = 0
        try:
            while data := client.recv(4096):
                data = bytearray(data)
                for i in range(len(data)):
                    if self.flip(sent + i):
                        data[i] ^= 0x10
                        self.flipped += 1
                sent += len(data)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown, not just close: close leaves the socket open while the other thread
            # blocks in recv, and the board takes its next client only after this one has gone
            for end in (upstream, client):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:  # the other side went first
                    pass
                end.close()
            self.sock.close()
            self.done.set()


def test_upload_through_a_damaged_link(capsys, board, model_dir, golden):
    # one bit flipped inside the weights: the device refuses that WRITE (BAD_CRC), the host resends
    proxy = FlippingProxy(board.url, lambda offset: offset == 3000)
    up = run_json(capsys, ["upload", "--model", str(model_dir), "--port", proxy.url, "--force"])
    assert proxy.done.wait(10) and proxy.flipped == 1
    assert up["uploaded"]
    info = run_json(capsys, ["info", "--port", board.url, "--model", str(model_dir)])
    assert info["model_is_loaded"]  # the image on the device is the model's, byte for byte

    # a flip every 200 bytes after INFO damages every WRITE frame: the upload gives up clearly
    proxy = FlippingProxy(board.url, lambda offset: offset > 100 and offset % 200 == 0)
    code, _, err = run(capsys, ["upload", "--model", str(model_dir), "--port", proxy.url, "--force"])
    assert_one_line_error(code, err, "failed 4 times", "BAD_CRC", "check the cable")
    assert proxy.done.wait(10)


def test_power_run_on_the_simulated_board(board, golden, tmp_path):
    """`mmfree power`'s run against the simulated board with a simulated INA226 on the core rail:
    the device generates the tokens it is asked for, the meter's constant 1.2 V x 0.25 A gives a
    zero net energy over its own baseline, and the counter-based estimate comes labelled."""
    from host.device import Device, open_transport
    from host.power.ina import INA226
    from host.power.measure import run_power
    from host.power.sim import FakeI2CBus, SimINA

    transport = open_transport(board.url, timeout=0.05)
    try:
        device = Device(transport, timeout=30)
        device.upload(DeviceLayout(CONFIG, LANES), golden.device)
        device.reset()
        meter = INA226(FakeI2CBus({0x40: SimINA("INA226", 0.1, lambda t: (1.2, 0.25))}),
                       shunt_ohms=0.1, max_amps=3.2768)
        result = run_power(device, [meter], tokens=6, idle_seconds=0.2, out_dir=str(tmp_path),
                           board="ulx3s-85f", interval=0.005, log=lambda s: None)
    finally:
        transport.close()
    measured, estimated = result["measured"], result["estimated"]
    assert measured.label == "measured" and measured.tokens == 6
    core = measured.rails["core"]
    assert core.average_w == pytest.approx(0.3, abs=2.5e-3)  # INA226 power LSB 2.5 mW here
    assert core.net_j == pytest.approx(0.0, abs=2 * 2.5e-3 * measured.seconds)
    assert (tmp_path / "power.csv").exists()
    assert estimated is not None and estimated.label == "estimated" and estimated.tokens == 6
