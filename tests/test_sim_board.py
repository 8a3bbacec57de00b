"""The simulated board: a stand-in core top under Verilator, opened with pyserial over TCP.

The stand-in (``EchoTop``) answers each byte ``b`` with ``(b + n) mod 256``, where ``n`` counts the
bytes it received before; ``n`` is the device state the reconnect tests look at. Sending a 0
reads ``n``. ``LoadedEchoTop`` adds a block shaped like the engine's hot path (a 195-lane ternary
adder tree fed from a ~400 KiB memory) so the speed figure means something; its replies also
depend on that block, so Verilator cannot drop it.
"""

import random
import signal
import subprocess
import sys
import time

import pytest
import serial
from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from sim.board import SimBoard, SimBoardError, build, strip_zero_memory_init, to_verilog
from sim.cocotb_run import ROOT, missing_simulator

pytestmark = pytest.mark.skipif(missing_simulator("verilator") is not None,
                                reason=str(missing_simulator("verilator")))

DIVISOR = 16  # few cycles per bit: the tests move thousands of bytes


class UartRx(wiring.Component):
    """8N1 receiver: ``data`` is valid for the one cycle ``valid`` is high."""

    line: In(1)
    data: Out(8)
    valid: Out(1)

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        sync_line = Signal(2, init=0b11)  # two flops: the line is asynchronous on a real board
        count = Signal(range(self.divisor))
        bits = Signal(range(10))
        shift = Signal(8)
        m.d.sync += sync_line.eq(Cat(self.line, sync_line[0]))
        line = sync_line[1]
        m.d.sync += self.valid.eq(0)
        with m.FSM():
            with m.State("idle"):
                with m.If(~line):
                    m.d.sync += count.eq(self.divisor // 2 - 1), bits.eq(0)
                    m.next = "frame"
            with m.State("frame"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Else():
                    m.d.sync += count.eq(self.divisor - 1), bits.eq(bits + 1)
                    with m.If(bits == 0):
                        with m.If(line):
                            m.next = "idle"  # not a start bit after all
                    with m.Elif(bits <= 8):
                        m.d.sync += shift.eq(Cat(shift[1:], line))
                    with m.Else():
                        m.d.sync += self.data.eq(shift), self.valid.eq(line)
                        m.next = "idle"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: takes ``data`` when ``valid`` and ``ready``."""

    line: Out(1, init=1)
    data: In(8)
    valid: In(1)
    ready: Out(1)

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.divisor))
        frame = Signal(10, init=1)
        bits = Signal(range(11))
        # Ready again in the stop bit's last cycle, so back-to-back frames leave no gap: the host
        # sends at exactly this rate and a slower reply would overflow the queue.
        m.d.comb += self.ready.eq((bits == 0) | ((bits == 1) & (count == 0))), self.line.eq(frame[0])
        with m.If(self.ready & self.valid):
            m.d.sync += frame.eq(Cat(Const(0, 1), self.data, Const(1, 1)))
            m.d.sync += bits.eq(10), count.eq(self.divisor - 1)
        with m.Elif(bits != 0):
            with m.If(count != 0):
                m.d.sync += count.eq(count - 1)
            with m.Else():
                m.d.sync += count.eq(self.divisor - 1), bits.eq(bits - 1)
                m.d.sync += frame.eq(Cat(frame[1:], Const(1, 1)))
        return m


class EchoTop(wiring.Component):
    """Answers byte ``b`` with ``b + n + extra`` (mod 256); ``n``: bytes received before."""

    uart_rx: In(1)
    uart_tx: Out(1)

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__()

    def extra(self, m):
        return Const(0, 8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UartRx(self.divisor)
        m.submodules.tx = tx = UartTx(self.divisor)
        m.submodules.queue = queue = fifo.SyncFIFO(width=8, depth=16)
        count = Signal(8)
        m.d.comb += rx.line.eq(self.uart_rx), self.uart_tx.eq(tx.line)
        m.d.comb += queue.w_data.eq(rx.data + count + self.extra(m)), queue.w_en.eq(rx.valid)
        with m.If(rx.valid):
            m.d.sync += count.eq(count + 1)
        m.d.comb += tx.data.eq(queue.r_data), tx.valid.eq(queue.r_rdy), queue.r_en.eq(tx.ready)
        return m


class LoadedEchoTop(EchoTop):
    """EchoTop plus a 195-lane ternary adder tree over weights streamed from a ~400 KiB memory."""

    LANES = 195
    DEPTH = 8192  # 8192 words x 390 bits = 390 KiB

    def extra(self, m):
        lfsr = Signal(64, init=1)
        m.d.sync += lfsr.eq(Cat(lfsr[63] ^ lfsr[62] ^ lfsr[60] ^ lfsr[59], lfsr[:63]))
        m.submodules.weights = weights = memory.Memory(shape=2 * self.LANES, depth=self.DEPTH, init=[])
        write, read = weights.write_port(), weights.read_port()
        waddr, raddr = Signal(13), Signal(13)
        m.d.sync += waddr.eq(waddr + 1), raddr.eq(raddr + 7)
        m.d.comb += write.addr.eq(waddr), write.en.eq(1)
        m.d.comb += write.data.eq(Cat(*(lfsr.rotate_left(i) for i in range(7)))[:2 * self.LANES])
        m.d.comb += read.addr.eq(raddr)
        # Activations: a shift register of bytes fed from the LFSR, as a vector streaming past.
        acts = [Signal(8, name=f"act{i}") for i in range(self.LANES)]
        m.d.sync += acts[0].eq(lfsr[:8])
        for i in range(1, self.LANES):
            m.d.sync += acts[i].eq(acts[i - 1])
        terms = []
        for i, a in enumerate(acts):
            w = read.data[2 * i:2 * i + 2]
            terms.append(Mux(w == 0b01, a.as_signed(), Mux(w == 0b11, -a.as_signed(), 0)))
        while len(terms) > 1:  # a balanced tree, as the engine builds it
            terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                     for i in range(0, len(terms), 2)]
        acc = Signal(32)
        m.d.sync += acc.eq(acc + terms[0])
        return acc[:8] ^ acc[8:16] ^ acc[16:24] ^ acc[24:]


@pytest.fixture(scope="module")
def board():
    with SimBoard(EchoTop(DIVISOR), DIVISOR, name="echo_top", stats_every=0.2) as b:
        yield b


def read_count(port) -> int:
    """The device's byte counter (sending 0 returns it, then it counts that byte too)."""
    port.write(b"\0")
    reply = port.read(1)
    assert len(reply) == 1, "no reply from the board"
    return reply[0]


def expected(data: bytes, n: int) -> bytes:
    return bytes((b + n + i) % 256 for i, b in enumerate(data))


def test_random_bytes_echo(board):
    rng = random.Random(1)
    with serial.serial_for_url(board.url, timeout=30) as port:
        n = read_count(port) + 1
        # More than the harness queues (64 KiB): the rest waits in TCP, as it would in a driver.
        data = rng.randbytes(100_000)
        port.write(data)
        got = port.read(len(data))
    assert got == expected(data, n)


def test_reconnect_keeps_device_state(board):
    with serial.serial_for_url(board.url, timeout=5) as port:
        n = read_count(port) + 1
        port.write(bytes(10))
        assert port.read(10) == expected(bytes(10), n)
    clients = board.wait_stats(5)["clients"]
    with serial.serial_for_url(board.url, timeout=5) as port:
        assert read_count(port) == (n + 10) % 256
    assert board.wait_stats(5)["clients"] == clients + 1


def test_no_framing_errors_and_bytes_counted(board):
    with serial.serial_for_url(board.url, timeout=5) as port:
        read_count(port)
    stats = board.wait_stats(5)
    assert stats["framing_errors"] == 0
    assert stats["bytes_to_device"] == stats["bytes_from_device"] > 0


def test_second_start_uses_the_cache(board):
    started = time.monotonic()
    assert build(EchoTop(DIVISOR), "echo_top", quiet=True) == board.binary
    assert time.monotonic() - started < 10  # a rebuild takes longer than converting and hashing


def test_reset_on_connect():
    with SimBoard(EchoTop(DIVISOR), DIVISOR, name="echo_top", reset_on_connect=True, quiet=True) as b:
        with serial.serial_for_url(b.url, timeout=5) as port:
            port.write(bytes(5))
            assert len(port.read(5)) == 5
        with serial.serial_for_url(b.url, timeout=5) as port:
            assert read_count(port) == 0


def test_exits_cleanly_with_final_stats():
    b = SimBoard(EchoTop(DIVISOR), DIVISOR, name="echo_top", stats_every=0, quiet=True)
    with b:
        with serial.serial_for_url(b.url, timeout=5) as port:
            read_count(port)
        assert b.running
    assert b.returncode == 0 and not b.running
    assert b.stats["when"] == "exit" and b.stats["bytes_from_device"] == 1
    assert b.cycles > 0 and b.cycles_per_second > 0


def test_max_cycles_and_launcher_gone(board):
    done = subprocess.run([str(board.binary), "--divisor", "16", "--max-cycles", "100000", "--idle-wait-ms", "0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert done.stdout.startswith("sim-board listening on 127.0.0.1:")
    assert "when=exit cycles=100000 " in done.stderr
    # The launcher holds the harness's stdin; when it goes away, the harness stops by itself.
    proc = subprocess.Popen([str(board.binary), "--divisor", "16", "--exit-on-stdin-eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()
    proc.stderr.close()


def test_serve_until_ctrl_c(board, tmp_path):
    """What ``mmfree sim-board`` does, through ``python -m sim.board``: URL on stdout, Ctrl-C stops."""
    source = tmp_path / "echo_top.v"
    source.write_text(to_verilog(EchoTop(DIVISOR), "echo_top"))
    proc = subprocess.Popen([sys.executable, "-m", "sim.board", "--verilog", str(source), "--name",
                             "echo_top", "--divisor", str(DIVISOR)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:")
        with serial.serial_for_url(url, timeout=5) as port:
            assert read_count(port) == 0
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped after" in err


def test_port_in_use_is_a_clear_error(board):
    with pytest.raises(SimBoardError, match=r"exited \(code 1\) before listening(.|\n)*cannot listen"):
        SimBoard(EchoTop(DIVISOR), DIVISOR, name="echo_top", port=board.port, quiet=True).start()


def test_bad_tops_are_clear_errors():
    class NoUart(wiring.Component):
        tx: Out(1)

        def elaborate(self, platform):
            return Module()

    no_uart = NoUart()
    no_uart._MustUse__silence = True  # rejected before elaboration: Amaranth would warn it went unused
    with pytest.raises(SimBoardError, match="signature must be exactly"):
        SimBoard(no_uart, DIVISOR)
    # (an Amaranth top always gets clk and rst: the board clocks its registered reset; Verilog
    # text is taken as it is and must have them)
    with pytest.raises(SimBoardError, match="lacks port.*clk"):
        SimBoard("module top(input uart_rx, output uart_tx); assign uart_tx = uart_rx; endmodule\n", DIVISOR)
    with pytest.raises(SimBoardError, match="divisor"):
        SimBoard("", 1)


def test_framing_errors_are_counted():
    """A top given as Verilog that holds its line low for two frames' time (a break) once."""
    brk = ("module brk(clk, rst, uart_rx, uart_tx);\n input clk; input rst; input uart_rx;\n"
           " output uart_tx;\n reg [15:0] n = 0;\n"
           " always @(posedge clk) if (rst) n <= 0; else if (n != 16'hffff) n <= n + 1;\n"
           " assign uart_tx = !(n >= 100 && n < 100 + 20 * 16);\nendmodule\n")
    with SimBoard(brk, 16, name="brk", stats_every=0.1, quiet=True) as b:
        while b.wait_stats(5)["cycles"] < 70_000:
            pass
        assert b.stats["framing_errors"] == 1 and b.stats["bytes_from_device"] == 0


def test_compile_error_is_a_clear_error():
    broken = ("module broken(clk, rst, uart_rx, uart_tx);\n input clk; input rst; input uart_rx;\n"
              " output uart_tx;\n assign uart_tx = no_such_signal;\nendmodule\n")
    with pytest.raises(SimBoardError, match=r"(?s)build of broken failed.*no_such_signal"):
        SimBoard(broken, DIVISOR, name="broken", quiet=True)


def test_zero_memory_initialisers_are_dropped():
    zeros = "  reg [7:0] m [1:0];\n  initial begin\n    m[0] = 8'h00;\n    m[1] = 8'h00;\n  end\n"
    mixed = "  initial begin\n    m[0] = 8'h00;\n    m[1] = 8'h01;\n  end\n"
    assert strip_zero_memory_init(zeros + mixed) == "  reg [7:0] m [1:0];\n" + mixed


@pytest.mark.slow  # its own Verilator build takes ~20 s
def test_speed_of_a_larger_design():
    """Measure cycles/s with a client connected; the assertion is only a sanity bound."""
    with SimBoard(LoadedEchoTop(DIVISOR), DIVISOR, name="loaded_echo_top", stats_every=1.0) as b:
        with serial.serial_for_url(b.url, timeout=5) as port:
            b.wait_stats(5)  # skip the report that includes the wait for this client
            port.write(bytes(range(256)))
            assert len(port.read(256)) == 256
            stats = b.wait_stats(5)
        print(f"\nsim-board speed ({LoadedEchoTop.LANES}-lane adder tree, {LoadedEchoTop.DEPTH} x "
              f"{2 * LoadedEchoTop.LANES}-bit memory): {b.cycles_per_second:,.0f} cycles/s, "
              f"{stats['cycles_per_cpu_second']:,.0f} per CPU second")
        assert stats["framing_errors"] == 0
        assert b.cycles_per_second > 10_000
