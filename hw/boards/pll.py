"""PLL parameter searches for the two boards' clock generators.

Both searches walk every divider setting the datasheet allows, keep the ones whose internal
frequencies sit inside the documented ranges, and return the one closest to the requested output.
A request no setting reaches within ``tolerance`` (relative) raises ValueError naming the nearest
achievable frequency, so a build never runs at a clock nobody asked for.

iCE40 (SB_PLL40_*, FEEDBACK_PATH "SIMPLE"; Lattice iCE40 sysCLOCK PLL Design and Usage Guide)::

    F_PFD  = F_IN / (DIVR + 1)            10 .. 133 MHz   (DIVR 0..15)
    F_VCO  = F_PFD * (DIVF + 1)          533 .. 1066 MHz  (DIVF 0..127)
    F_OUT  = F_VCO / 2**DIVQ              16 .. 275 MHz   (DIVQ 1..6)

ECP5 (EHXPLLL, feedback from CLKOP; Lattice ECP5 sysCLOCK PLL/DLL Design and Usage Guide)::

    F_PFD   = F_IN / CLKI_DIV             3.125 .. 400 MHz  (CLKI_DIV 1..128)
    F_CLKOP = F_PFD * CLKFB_DIV           3.125 .. 400 MHz  (CLKFB_DIV 1..80)
    F_VCO   = F_CLKOP * CLKOP_DIV           400 .. 800 MHz  (CLKOP_DIV 1..128)
"""

from dataclasses import dataclass

__all__ = ["DEFAULT_TOLERANCE", "Ice40Pll", "Ecp5Pll", "ice40_pll", "ecp5_pll"]

#: Relative error accepted between the requested and the achieved output frequency.
DEFAULT_TOLERANCE = 0.01


def _check_request(fin_mhz, fout_mhz, fin_range, fout_range, family):
    if not fin_range[0] <= fin_mhz <= fin_range[1]:
        raise ValueError(f"{family} PLL input {fin_mhz:g} MHz is outside "
                         f"{fin_range[0]:g}..{fin_range[1]:g} MHz")
    if not fout_mhz > 0:
        raise ValueError(f"{family} PLL output must be a positive frequency, got {fout_mhz!r}")


def _pick(candidates, fin_mhz, fout_mhz, tolerance, family, fout_range):
    """The best candidate (list of (sort key, config)), or ValueError if none is close enough."""
    if not candidates:
        raise ValueError(f"{family} PLL: no divider setting is valid for {fin_mhz:g} MHz in")
    _key, best = min(candidates, key=lambda c: c[0])
    error = abs(best.fout_mhz - fout_mhz) / fout_mhz
    if error > tolerance:
        raise ValueError(
            f"{family} PLL cannot make {fout_mhz:g} MHz from {fin_mhz:g} MHz: the nearest is "
            f"{best.fout_mhz:.4g} MHz ({error:.1%} off, tolerance {tolerance:.1%}); the output "
            f"range is {fout_range[0]:g}..{fout_range[1]:g} MHz")
    return best


# --- iCE40 -----------------------------------------------------------------------------------------

ICE40_FIN = (10.0, 133.0)
ICE40_PFD = (10.0, 133.0)
ICE40_VCO = (533.0, 1066.0)
ICE40_FOUT = (16.0, 275.0)


@dataclass(frozen=True)
class Ice40Pll:
    fin_mhz: float
    divr: int
    divf: int
    divq: int

    @property
    def pfd_mhz(self):
        return self.fin_mhz / (self.divr + 1)

    @property
    def vco_mhz(self):
        return self.pfd_mhz * (self.divf + 1)

    @property
    def fout_mhz(self):
        return self.vco_mhz / 2 ** self.divq

    @property
    def filter_range(self):
        # The loop filter setting follows the PFD frequency (the guide's table, as icepll uses it).
        pfd = self.pfd_mhz
        for limit, setting in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
            if pfd < limit:
                return setting
        return 6

    def params(self):
        """Instance parameters for SB_PLL40_PAD / SB_PLL40_CORE."""
        return dict(p_FEEDBACK_PATH="SIMPLE", p_DIVR=self.divr, p_DIVF=self.divf,
                    p_DIVQ=self.divq, p_FILTER_RANGE=self.filter_range)


def ice40_pll(fin_mhz, fout_mhz, *, tolerance=DEFAULT_TOLERANCE):
    """The SB_PLL40 setting closest to ``fout_mhz`` from a ``fin_mhz`` reference."""
    _check_request(fin_mhz, fout_mhz, ICE40_FIN, ICE40_FOUT, "iCE40")
    candidates = []
    for divr in range(16):
        pfd = fin_mhz / (divr + 1)
        if not ICE40_PFD[0] <= pfd <= ICE40_PFD[1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not ICE40_VCO[0] <= vco <= ICE40_VCO[1]:
                continue
            for divq in range(1, 7):
                cfg = Ice40Pll(fin_mhz, divr, divf, divq)
                if ICE40_FOUT[0] <= cfg.fout_mhz <= ICE40_FOUT[1]:
                    # Ties go to the smallest DIVR: a higher PFD frequency, less jitter.
                    candidates.append(((abs(cfg.fout_mhz - fout_mhz), divr, divq, divf), cfg))
    return _pick(candidates, fin_mhz, fout_mhz, tolerance, "iCE40", ICE40_FOUT)


# --- ECP5 ------------------------------------------------------------------------------------------

ECP5_FIN = (8.0, 400.0)
ECP5_PFD = (3.125, 400.0)
ECP5_VCO = (400.0, 800.0)
ECP5_FOUT = (3.125, 400.0)


@dataclass(frozen=True)
class Ecp5Pll:
    fin_mhz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def pfd_mhz(self):
        return self.fin_mhz / self.clki_div

    @property
    def fout_mhz(self):
        return self.pfd_mhz * self.clkfb_div

    @property
    def vco_mhz(self):
        return self.fout_mhz * self.clkop_div

    @property
    def clkop_cphase(self):
        # What Project Trellis's ecppll emits for CLKOP fed back to CLKFB; with the output in the
        # feedback loop the coarse phase does not move the output's phase.
        return (self.clkop_div - 1) // 2

    def params(self):
        """Instance parameters and attributes for EHXPLLL with CLKOP as the feedback."""
        return dict(
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_FEEDBK_PATH="CLKOP",
            p_CLKI_DIV=self.clki_div, p_CLKFB_DIV=self.clkfb_div,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=self.clkop_div,
            p_CLKOP_CPHASE=self.clkop_cphase, p_CLKOP_FPHASE=0,
            # Analogue settings the vendor tool writes for every EHXPLLL; nextpnr passes them on.
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            a_FREQUENCY_PIN_CLKI=f"{self.fin_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{self.fout_mhz:g}",
        )


def ecp5_pll(fin_mhz, fout_mhz, *, tolerance=DEFAULT_TOLERANCE):
    """The EHXPLLL setting closest to ``fout_mhz`` from a ``fin_mhz`` reference."""
    _check_request(fin_mhz, fout_mhz, ECP5_FIN, ECP5_FOUT, "ECP5")
    candidates = []
    for clki_div in range(1, 129):
        pfd = fin_mhz / clki_div
        if not ECP5_PFD[0] <= pfd <= ECP5_PFD[1]:
            continue
        for clkfb_div in range(1, 81):
            fout = pfd * clkfb_div
            if not ECP5_FOUT[0] <= fout <= ECP5_FOUT[1]:
                continue
            for clkop_div in range(1, 129):
                cfg = Ecp5Pll(fin_mhz, clki_div, clkfb_div, clkop_div)
                if ECP5_VCO[0] <= cfg.vco_mhz <= ECP5_VCO[1]:
                    # Ties go to the VCO nearest the middle of its range (as ecppll does), then
                    # to the smallest input divider (higher PFD frequency).
                    key = (abs(fout - fout_mhz), abs(cfg.vco_mhz - 600.0), clki_div, clkfb_div)
                    candidates.append((key, cfg))
    return _pick(candidates, fin_mhz, fout_mhz, tolerance, "ECP5", ECP5_FOUT)
