"""Estimated energy per token from the device's activity counters (docs/energy.md).

Everything here is an ESTIMATE: activity counts (``golden.image.COUNTERS``) times per-event
energy coefficients, plus static power. No open tool turns a Yosys/nextpnr netlist into
calibrated iCE40/ECP5 power, so each coefficient carries its basis and its source:

* ``measured``: taken from a published measurement, with the arithmetic that derives it;
* ``scaled``: a measured or published figure carried to another part or voltage by a stated rule;
* ``assumed``: no source found; the reasoning is given and the number is a placeholder to be
  replaced by a measurement (``host.power``).

The one measurement the project relies on is tinyvision-ai-inc/ice40_power (iCE40 UP5K on the
Lattice breakout board, each rail on a Joulescope JS110, core at 1.219 V), quoted in
/work/shared/reference/anchors.md. Rows quoted below are that README's table (currents in uA).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from golden.image import COUNTERS

__all__ = ["Coefficient", "FamilyModel", "FAMILIES", "EnergyEstimate", "estimate", "counter_deltas",
           "coefficient_table"]

COUNTER_WRAP = 1 << 32  # the device's counters are 32 bits and wrap
TRITS_PER_BYTE = 5

# ice40_power (Joulescope), core rail at 1.219 V; currents in amperes.
_V_ICE40 = 1.219
_BLANK = 85.6e-6                       # "Blank design"
_EXT12_32LC, _EXT12_228LC = 613.5e-6, 641.3e-6   # "External 12 MHz + 28 bit counter" rows
_HF12_COUNTER, _HF12_MATH = 645e-6, 996e-6       # "HFOSC (12 MHz) + Math (no DSP)" vs counter only
_MATH_LCS = 208 - 28                   # logic cells the LUT multiplier adds
_PLL_CORE = ((16, 1419e-6), (32, 2029e-6), (48, 2573e-6))  # "PLL (12MHz in, N MHz output)", core
_PLL_RAIL = (138.6e-6, 138.9e-6, 103.6e-6)                # the same rows, PLL rail


def _pll_intercept() -> float:
    """Core current of the PLL rows extrapolated to 0 MHz (least squares line)."""
    xs, ys = zip(*_PLL_CORE)
    mx, my = sum(xs) / 3, sum(ys) / 3
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx


@dataclass(frozen=True)
class Coefficient:
    name: str
    value: float
    unit: str
    basis: str   # "measured", "scaled" or "assumed"
    source: str  # where the number comes from and how it was derived


@dataclass(frozen=True)
class FamilyModel:
    """The estimate's coefficients for one FPGA family (all on the core rail)."""

    family: str
    core_volts: float
    cells: int    # clocked logic cells assumed for the design when the caller gives none
    lanes: int    # the board table's default lane count for this family (sets the word width)
    coefficients: tuple

    def __getitem__(self, name: str) -> Coefficient:
        for c in self.coefficients:
            if c.name == name:
                return c
        raise KeyError(name)

    def value(self, name: str) -> float:
        return self[name].value


def _ice40() -> FamilyModel:
    static = _BLANK * _V_ICE40
    pll = (_pll_intercept() - _BLANK) * _V_ICE40 + sum(_PLL_RAIL) / 3 * _V_ICE40
    clock = (_EXT12_32LC - _BLANK) * _V_ICE40 / 12e6
    cell_clock = (_EXT12_228LC - _EXT12_32LC) / (228 - 32) * _V_ICE40 / 12e6
    lc = (_HF12_MATH - _HF12_COUNTER) * _V_ICE40 / 12e6 / _MATH_LCS
    # Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm, 0.9 V): a 64-bit read of a
    # 32 KB SRAM costs 20 pJ. An SPRAM block is 32 KB; carried to 1.2 V by V^2.
    bit = 20e-12 / 64 * (1.2 / 0.9) ** 2
    src = "tinyvision-ai-inc/ice40_power (Joulescope, core rail 1.219 V)"
    return FamilyModel("ice40", 1.2, cells=5000, lanes=10, coefficients=(
        Coefficient("static_w", static, "W", "measured",
                    f"{src}: blank design 85.6 uA x 1.219 V"),
        Coefficient("pll_w", pll, "W", "measured",
                    f"{src}: PLL rows (16/32/48 MHz: 1419/2029/2573 uA core) extrapolated to 0 MHz "
                    f"= {_pll_intercept() * 1e6:.0f} uA, minus the blank 85.6 uA, plus the PLL rail's "
                    "mean 127 uA, all x 1.219 V"),
        Coefficient("cycle_j", clock, "J/cycle", "measured",
                    f"{src}: external 12 MHz + 32-LC counter 613.5 uA minus blank 85.6 uA, x 1.219 V "
                    "/ 12 MHz: the clock network and a small counter, every cycle"),
        Coefficient("cell_cycle_j", cell_clock, "J/(cell cycle)", "measured",
                    f"{src}: 228-LC vs 32-LC counter at 12 MHz, (641.3 - 613.5) uA / 196 LCs x "
                    "1.219 V / 12 MHz: clock load of one more clocked cell"),
        Coefficient("lc_j", lc, "J/(LC cycle)", "measured",
                    f"{src}: HFOSC 12 MHz, LUT multiplier (208 LCs) 996 uA vs counter (28 LCs) "
                    "645 uA: 351 uA x 1.219 V / 12 MHz / 180 LCs, one busy logic cell for a cycle"),
        Coefficient("busy_cycle_j", 150 * lc, "J/cycle", "assumed",
                    "sequencers, address counters and stream handshakes that toggle while a step "
                    "runs: assumed 150 busy LCs x lc_j (not measured)"),
        Coefficient("weight_bit_j", bit, "J/bit", "scaled",
                    "Horowitz, ISSCC 2014: 32 KB SRAM, 64-bit read, 20 pJ at 45 nm / 0.9 V, x "
                    "(1.2/0.9)^2; no published per-access figure for UP5K SPRAM was found, and an "
                    "FPGA block's routing makes this a lower bound"),
        Coefficient("lane_j", 24 * lc, "J/(lane word)", "assumed",
                    "one lane's 5-trit decode share, add/subtract of an int8 code and accumulator "
                    "register: assumed 24 busy LCs x lc_j"),
        Coefficient("lmul_j", 40 * lc, "J/op", "assumed",
                    "one bf16 L-Mul (sign XOR, exponent and mantissa adds, rounding): assumed 40 busy "
                    "LCs x lc_j"),
        Coefficient("element_j", 60 * lc, "J/element", "assumed",
                    "the non-L-Mul work of a vector element (fadd, compare, int conversion, operand "
                    "reads): assumed 60 busy LCs x lc_j"),
    ))


def _ecp5() -> FamilyModel:
    ice = _ice40()
    v2 = (1.1 / _V_ICE40) ** 2           # ECP5 core 1.1 V; same 40 nm node: C per cell kept
    spine = (84_000 / 5_280) ** 0.5       # the global clock tree spans a ~16x larger fabric
    bit = 10e-12 / 64 * (1.1 / 0.9) ** 2  # Horowitz 8 KB SRAM: EBRs are 2.25 KB blocks
    ref = "iCE40 figure (tinyvision-ai-inc/ice40_power)"
    return FamilyModel("ecp5", 1.1, cells=40_000, lanes=195, coefficients=(
        Coefficient("static_w", 0.1, "W", "assumed",
                    "no measured LFE5U-85F core static power at hand: 100 mW assumed (order of "
                    "magnitude for an 84K-LUT 40 nm part at 25 C); replace with the ICC standby of "
                    "the ECP5 data sheet (FPGA-DS-02012) or a core-rail measurement"),
        Coefficient("pll_w", ice.value("pll_w") * v2, "W", "scaled", f"{ref} x (1.1/1.219)^2"),
        Coefficient("cycle_j", ice.value("cycle_j") * v2 * spine, "J/cycle", "scaled",
                    f"{ref} x (1.1/1.219)^2 x sqrt(84K/5.28K LUTs) for the longer clock spines"),
        Coefficient("cell_cycle_j", ice.value("cell_cycle_j") * v2, "J/(cell cycle)", "scaled",
                    f"{ref} x (1.1/1.219)^2"),
        Coefficient("lc_j", ice.value("lc_j") * v2, "J/(LC cycle)", "scaled",
                    f"{ref} x (1.1/1.219)^2"),
        Coefficient("busy_cycle_j", ice.value("busy_cycle_j") * v2, "J/cycle", "assumed",
                    "the iCE40 assumption (150 busy LCs) x (1.1/1.219)^2"),
        Coefficient("weight_bit_j", bit, "J/bit", "scaled",
                    "Horowitz, ISSCC 2014: 8 KB SRAM, 64-bit read, 10 pJ at 45 nm / 0.9 V, x "
                    "(1.1/0.9)^2; no published per-access figure for ECP5 EBR was found"),
        Coefficient("lane_j", ice.value("lane_j") * v2, "J/(lane word)", "assumed",
                    "the iCE40 assumption (24 busy LCs per lane) x (1.1/1.219)^2"),
        Coefficient("lmul_j", ice.value("lmul_j") * v2, "J/op", "assumed",
                    "the iCE40 assumption (40 busy LCs) x (1.1/1.219)^2"),
        Coefficient("element_j", ice.value("element_j") * v2, "J/element", "assumed",
                    "the iCE40 assumption (60 busy LCs) x (1.1/1.219)^2"),
    ))


FAMILIES = {"ice40": _ice40(), "ecp5": _ecp5()}


def counter_deltas(before: dict, after: dict) -> dict:
    """Per-counter increase between two ``Device.counters()`` snapshots (32-bit wrap allowed)."""
    missing = [name for name in COUNTERS if name not in before or name not in after]
    if missing:
        raise ValueError(f"counter snapshot lacks {', '.join(missing)}")
    return {name: (int(after[name]) - int(before[name])) % COUNTER_WRAP for name in COUNTERS}


@dataclass(frozen=True)
class EnergyEstimate:
    """An ESTIMATE of the core rail's energy (not a measurement: see ``host.power``)."""

    family: str
    clock_hz: float
    lanes: int
    cells: int
    tokens: int
    seconds: float
    joules: float
    breakdown: dict          # event class -> joules over the window
    events: dict             # event class -> its count over the window
    coefficients: tuple = field(repr=False)
    label: str = "estimated"
    cells_basis: str = "assumed"   # where ``cells`` came from

    @property
    def joules_per_token(self) -> float:
        return self.joules / self.tokens

    @property
    def watts(self) -> float:
        return self.joules / self.seconds

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    def summary(self) -> str:
        lines = [f"estimated core-rail energy ({self.family}, {self.clock_hz / 1e6:g} MHz, "
                 f"{self.lanes} lanes, {self.cells:,} clocked cells, {self.cells_basis}): "
                 f"{self.joules_per_token * 1e6:.3f} uJ/token, {self.tokens_per_second:.1f} tokens/s "
                 f"over the window (idle cycles included), {self.watts * 1e3:.3f} mW average",
                 "  per token, by event class (estimated):"]
        for name, joules in self.breakdown.items():
            lines.append(f"    {name:<14} {joules / self.tokens * 1e6:10.4f} uJ  "
                         f"({self.events[name] / self.tokens:,.0f} per token)")
        lines.append("  coefficients: docs/energy.md (measured / scaled / assumed, with sources)")
        return "\n".join(lines)


def estimate(counters_before: dict, counters_after: dict, family: str, clock_hz: float, *,
             lanes: int | None = None, cells: int | None = None,
             cells_basis: str = "given") -> EnergyEstimate:
    """Estimate the core-rail energy of the tokens stepped between two counter snapshots.

    ``lanes`` (the bitstream's lane count: a weight word is lanes/5 bytes) and ``cells`` (the
    clocked logic cells of the placed design) default to the family's assumptions; ``cells_basis``
    says where a given ``cells`` came from (the summary prints it)."""
    try:
        model = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown FPGA family {family!r}; choose one of {', '.join(FAMILIES)}") from None
    if not clock_hz > 0:
        raise ValueError(f"clock_hz must be positive, got {clock_hz!r}")
    lanes = model.lanes if lanes is None else lanes
    cells, cells_basis = (model.cells, "assumed") if cells is None else (cells, cells_basis)
    d = counter_deltas(counters_before, counters_after)
    if d["steps"] == 0:
        raise ValueError("no token steps between the two counter snapshots")
    if d["cycles"] == 0:
        raise ValueError("the cycle counter did not advance between the two snapshots")
    seconds = d["cycles"] / clock_hz
    word_bits = lanes // TRITS_PER_BYTE * 8
    elements = d["quant_elements"] + d["mlgru_elements"] + d["glu_elements"] + d["post_rows"]
    k = model.value
    per_cycle = k("cycle_j") + cells * k("cell_cycle_j")
    events = {  # event class -> count
        "static": d["cycles"],
        "clock_idle": d["cycles"] - d["busy_cycles"],
        "clock_busy": d["busy_cycles"],
        "weight_read": d["weight_words"] * word_bits,
        "lanes": d["weight_words"] * lanes,
        "lmul": d["lmul_ops"],
        "elements": elements,
    }
    breakdown = {
        "static": (k("static_w") + k("pll_w")) * seconds,
        "clock_idle": events["clock_idle"] * per_cycle,
        "clock_busy": events["clock_busy"] * (per_cycle + k("busy_cycle_j")),
        "weight_read": events["weight_read"] * k("weight_bit_j"),
        "lanes": events["lanes"] * k("lane_j"),
        "lmul": events["lmul"] * k("lmul_j"),
        "elements": events["elements"] * k("element_j"),
    }
    return EnergyEstimate(family, float(clock_hz), lanes, cells, d["steps"], seconds,
                          sum(breakdown.values()), breakdown, events, model.coefficients,
                          cells_basis=cells_basis)


def _fmt(c: Coefficient) -> str:
    return f"{c.value:.4g}"


def coefficient_table(family: str) -> str:
    """The family's coefficients as a Markdown table (docs/energy.md embeds these)."""
    model = FAMILIES[family]
    rows = ["| coefficient | value | unit | basis | source |", "|---|---|---|---|---|"]
    rows += [f"| `{c.name}` | {_fmt(c)} | {c.unit} | {c.basis} | {c.source} |" for c in model.coefficients]
    return "\n".join(rows)
