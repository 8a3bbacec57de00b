"""The derived figures of the benchmark suite (no simulation): the scaling bounds and the per-board
throughput, against hand-computed values."""

import pytest

from benchmarks import scaling, summary
from golden.config import ModelConfig
from golden.image import COUNTERS, DeviceLayout


def test_memory_ceiling_of_the_ecp5_85f():
    # 208 EBR x 36 bits = 7,488 bits per cycle; 1.6 bits per packed trit -> 4,680 weights per cycle
    assert scaling.MAX_FED_LANES == pytest.approx(4680)
    assert scaling.memory_cycles(4680) == pytest.approx(1.0)
    # the ECP5 model: 1,376,256 weights x 1.6 bits / 7,488 bits per cycle
    assert scaling.memory_cycles(1_376_256) == pytest.approx(294.07, abs=0.01)


def test_bounds_and_what_binds():
    layout = DeviceLayout(ModelConfig.load("models/mmfree-ecp5"), 195)
    per = {"quant_busy": 8000, "glu_busy": 9000, "mlgru_busy": 100}
    b = scaling.bounds(layout, per)
    assert b["lanes"] == 7360                        # BENCHMARKS.md: 7,360 weight words of 195 trits
    assert (b["elementwise"], b["elementwise_unit"]) == (9000, "glu_busy")
    assert scaling.binding(b) == "elementwise"
    assert scaling.binding({**b, "elementwise": 7000}) == "lanes"


def _record(cycles=10_000, lanes=100, weights=1_000_000, fmax=50.0):
    per = {name: 0 for name in COUNTERS}
    per.update(weight_words=weights // lanes, busy_cycles=cycles, steps=1)
    return {"engine": {"ulx3s-85f": {"board": "ulx3s-85f", "model": "m", "lanes": lanes, "cycles_per_token": cycles,
                                     "ternary_weights": weights, "weight_utilisation": weights / lanes / cycles,
                                     "lane_utilisation": weights / lanes / cycles, "per_token": per}},
            "boards": {"ulx3s-85f": {"fmax_mhz": fmax, "ff": 1000, "lut": 1, "bram": 1, "dsp": 0}}}


def test_board_throughput_and_static_energy():
    f = summary.board_figures("ulx3s-85f", _record())
    assert f["tokens_s"] == pytest.approx(5_000)             # 50 MHz / 10,000 cycles
    assert f["weights_s"] == pytest.approx(5e9)              # 5,000 tokens/s x 1M weights
    assert f["peak_weights_s"] == pytest.approx(100 * 50e6)  # lanes x fmax
    assert f["target_weights_s"] == pytest.approx(100 * 100e6 * 1.0)
    # static term: (100 mW assumed + the PLL) for 10,000 cycles at 50 MHz = 200 us
    static = f["energy"].breakdown["static"]
    assert 0.1 * 200e-6 < static < 0.102 * 200e-6
    assert summary.board_figures("icebreaker", _record()) is None   # nothing recorded for it


def test_where_we_stand_names_the_aim_and_the_shortfall():
    text = summary.render_anchors(_record(cycles=20_000))
    # 1M weights x 2,500 tokens/s = 2.5 G weights/s, a quarter of 10 G
    assert "**2.50 G** (25% of the aim)" in text
    # at 100 MHz, 10 G weights/s with 1M weights per token needs <= 10,000 cycles per token
    assert "at most 10,000 cycles per token (50% of today's)" in text
