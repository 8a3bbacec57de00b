"""The counter-based energy estimate: the formula applied by hand to known counter deltas."""

import pytest

from golden.image import COUNTERS
from host.energy import FAMILIES, counter_deltas, estimate


def snapshot(**values):
    return {name: values.get(name, 0) for name in COUNTERS}


BEFORE = snapshot(cycles=1000, busy_cycles=500, steps=3, weight_words=100)
AFTER = snapshot(cycles=1000 + 240_000, busy_cycles=500 + 150_000, steps=3 + 8, weight_words=100 + 58_880,
                 quant_elements=20_000, mlgru_elements=4_000, glu_elements=6_000, post_rows=9_000,
                 lmul_ops=90_000)


def test_estimate_by_hand_ice40():
    k = {c.name: c.value for c in FAMILIES["ice40"].coefficients}
    e = estimate(BEFORE, AFTER, "ice40", 24e6, lanes=20, cells=3000)
    seconds = 240_000 / 24e6
    per_cycle = k["cycle_j"] + 3000 * k["cell_cycle_j"]
    expected = {
        "static": (k["static_w"] + k["pll_w"]) * seconds,
        "clock_idle": 90_000 * per_cycle,
        "clock_busy": 150_000 * (per_cycle + k["busy_cycle_j"]),
        "weight_read": 58_880 * 32 * k["weight_bit_j"],  # 20 lanes: 4-byte words
        "lanes": 58_880 * 20 * k["lane_j"],
        "lmul": 90_000 * k["lmul_j"],
        "elements": 39_000 * k["element_j"],
    }
    assert e.breakdown == pytest.approx(expected, rel=1e-12)
    total = sum(expected.values())
    assert e.tokens == 8 and e.seconds == pytest.approx(seconds)
    assert e.joules_per_token == pytest.approx(total / 8)
    assert e.watts == pytest.approx(total / seconds)
    assert e.tokens_per_second == pytest.approx(8 / seconds)
    assert e.label == "estimated" and "estimated" in e.summary()
    # the summary says where the cell count came from: the caller's, or the family's assumption
    assert "3,000 clocked cells, given" in e.summary()
    assert "3,000 clocked cells, a build's" in estimate(BEFORE, AFTER, "ice40", 24e6, cells=3000,
                                                         cells_basis="a build's").summary()
    default = estimate(BEFORE, AFTER, "ice40", 24e6)
    assert f"{FAMILIES['ice40'].cells:,} clocked cells, assumed" in default.summary()


def test_measured_coefficients_follow_from_the_quoted_measurements():
    k = {c.name: c for c in FAMILIES["ice40"].coefficients}
    assert k["static_w"].value == pytest.approx(85.6e-6 * 1.219)
    assert k["cycle_j"].value == pytest.approx((613.5 - 85.6) * 1e-6 * 1.219 / 12e6)
    assert k["lc_j"].value == pytest.approx(351e-6 * 1.219 / 12e6 / 180)
    assert k["static_w"].basis == "measured" and "ice40_power" in k["static_w"].source


def test_every_coefficient_is_labelled_and_documented():
    doc = open("docs/energy.md").read()
    for model in FAMILIES.values():
        assert [c.name for c in model.coefficients] == [c.name for c in FAMILIES["ice40"].coefficients]
        for c in model.coefficients:
            assert c.basis in ("measured", "scaled", "assumed") and c.source and c.value > 0
            assert f"| `{c.name}` | {c.value:.4g} |" in doc, f"docs/energy.md is stale for {c.name}"


def test_counter_wrap_and_errors():
    before = snapshot(cycles=0xFFFF_FF00, steps=1)
    after = snapshot(cycles=0x100, steps=2)
    assert counter_deltas(before, after)["cycles"] == 0x200
    assert estimate(before, after, "ecp5", 100e6).seconds == pytest.approx(0x200 / 100e6)
    with pytest.raises(ValueError, match="no token steps"):
        estimate(BEFORE, BEFORE, "ice40", 24e6)
    with pytest.raises(ValueError, match="unknown FPGA family"):
        estimate(BEFORE, AFTER, "xilinx", 24e6)
    with pytest.raises(ValueError, match="lacks busy_cycles"):
        counter_deltas({"cycles": 0}, AFTER)


def test_ecp5_defaults_use_the_board_lanes():
    e = estimate(BEFORE, AFTER, "ecp5", 100e6)
    assert e.lanes == 195 and e.events["weight_read"] == 58_880 * 39 * 8
