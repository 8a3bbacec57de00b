"""The board layer: per-board defaults and the board top around a core top.

A *core top* is a ``wiring.Component`` with ``{"uart_rx": In(1), "uart_tx": Out(1)}`` in the
``sync`` domain and nothing board-specific. ``BoardTop`` adds what a board needs: the PLL that makes
the core clock from the board oscillator, a reset held until the PLL has locked, and the UART pins.

``BOARDS`` is the one table of per-board defaults; ``host.build`` builds from it and
``constraints/`` holds the pin and clock constraints these tops emit.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from .pll import DEFAULT_TOLERANCE, ecp5_pll, ice40_pll

__all__ = ["BAUD", "BOARDS", "Board", "BoardTop", "LockReset", "MAX_BAUD_ERROR", "core_signature",
           "get_board", "uart_divisor"]

#: Both boards' USB UARTs (FT2232H on the iCEBreaker, FT231X on the ULX3S) run at 3 Mbaud.
BAUD = 3_000_000
#: A UART frame of 10 bits tolerates a few per cent of clock mismatch; both ends share it.
MAX_BAUD_ERROR = 0.02

#: What every core top offers the board.
core_signature = wiring.Signature({"uart_rx": In(1), "uart_tx": Out(1)})


@dataclass(frozen=True)
class Board:
    name: str
    platform: type          # amaranth-boards platform class
    family: str             # "ice40" or "ecp5": which PLL and which report cells
    clock_mhz: float        # default core clock (PLL output)
    baud: int
    engine: str             # the token engine it carries (hw.top.ENGINES): "token" or "compact"
    lanes: int              # default lane count (a multiple of 5, 5 trits per byte)
    constraints: str        # file under constraints/ holding what the build emits
    bitstream: str          # product file name the build writes
    block_ram_bytes: int    # the part's block RAM (9-bit bytes on ECP5: its words are 36 bits wide)
    block_ram: str          # what that is, for messages
    image_memory_bytes: int  # where the engine keeps the model's image: the block RAM, or the
                             # UP5K's SPRAM for the compact engine
    image_memory: str        # what that is, for messages
    # the nextpnr seed ``mmfree build`` uses unless told: one whose build of the board's shipped
    # model meets its clock at the recorded commit (BENCHMARKS.md, "Whole device on the boards")
    seed: int = 1

    @property
    def ref_mhz(self):
        """The board oscillator (the platform's default clock), MHz."""
        return self.platform().default_clk_frequency / 1e6

    def pll(self, clock_mhz=None, *, tolerance=DEFAULT_TOLERANCE):
        """PLL setting for ``clock_mhz`` (default: the board's); ValueError if unreachable."""
        search = ice40_pll if self.family == "ice40" else ecp5_pll
        return search(self.ref_mhz, self.clock_mhz if clock_mhz is None else clock_mhz,
                      tolerance=tolerance)


BOARDS = {
    "icebreaker": Board(
        # the compact engine (hw.compact, docs/compact_engine.md): the token engine does not fit
        name="icebreaker", platform=ICEBreakerPlatform, family="ice40", clock_mhz=24.0,
        baud=BAUD, engine="compact", lanes=10, constraints="icebreaker.pcf", bitstream="top.bin",
        block_ram_bytes=30 * 4096 // 8, block_ram="30 EBR x 4 Kbit (iCE40 UP5K)",
        image_memory_bytes=4 * 256 * 1024 // 8, image_memory="4 SPRAM x 256 Kbit (iCE40 UP5K)",
        # the part is full: seeds 1-4 placed 22.3-23.95 MHz at 126c75e, seed 5 24.3 MHz
        seed=5),
    "ulx3s-85f": Board(
        # 75 MHz: below the whole device's fmax on the ECP5 (BENCHMARKS.md), so the default
        # bitstream meets timing at the clock it runs; 3 Mbaud is exactly 25 clocks per bit. The
        # fmax target, 100 MHz (issue 4), is met with --clock-mhz 100 at seed 1 (e9fab15), but
        # seeds 2 and 3 gave 76.2 and 96.8 MHz.
        name="ulx3s-85f", platform=ULX3S_85F_Platform, family="ecp5", clock_mhz=75.0,
        baud=BAUD, engine="token", lanes=195, constraints="ulx3s-85f.lpf", bitstream="top.bit",
        block_ram_bytes=208 * 18432 // 8, block_ram="208 EBR x 18 Kbit (ECP5 LFE5U-85F)",
        image_memory_bytes=208 * 18432 // 8, image_memory="208 EBR x 18 Kbit (ECP5 LFE5U-85F)"),
}


def get_board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None


def uart_divisor(clock_hz, baud=BAUD, *, max_error=MAX_BAUD_ERROR):
    """Clock cycles per UART bit: round(clock / baud), or ValueError if the baud rate it gives
    is more than ``max_error`` (relative) off."""
    if baud <= 0 or clock_hz <= 0:
        raise ValueError(f"clock ({clock_hz!r} Hz) and baud ({baud!r}) must be positive")
    divisor = round(clock_hz / baud)
    if divisor < 1:
        raise ValueError(f"a {clock_hz / 1e6:g} MHz clock cannot send {baud} baud")
    error = abs(clock_hz / divisor - baud) / baud
    if error >= max_error:
        raise ValueError(
            f"{baud} baud from {clock_hz / 1e6:g} MHz: divisor {divisor} gives "
            f"{clock_hz / divisor:.0f} baud, {error:.1%} off (limit {max_error:.0%}); "
            "pick a clock that is closer to a multiple of the baud rate")
    return divisor


class BoardTop(Elaboratable):
    """``core`` on ``board`` at ``clock_mhz`` (default: the board's).

    ``core`` is a core-top factory called as ``core(divisor=...)`` with the UART divisor for the
    achieved clock, or a ready core-top instance (then its divisor is the caller's business).
    The PLL setting, the achieved clock and the divisor are computed here, before elaboration, so
    a bad request fails early: ``pll``, ``clock_mhz``, ``divisor`` are attributes.
    """

    #: Net name of the core clock (the PLL output) in the netlist and in nextpnr's report.
    CLOCK_NET = "core_clk"
    #: Core clock cycles the reset stays high after the PLL's lock is seen.
    LOCK_HOLD = 15

    def __init__(self, core, board, clock_mhz=None):
        # A top whose constructor raised is not an unused design: no UnusedElaboratable warning
        # for it (Amaranth's MustUse flag, cleared once construction has succeeded).
        self._MustUse__silence = True
        self.board = get_board(board) if isinstance(board, str) else board
        self.pll = self.board.pll(clock_mhz)
        self.clock_mhz = self.pll.fout_mhz
        self.divisor = uart_divisor(self.clock_mhz * 1e6, self.board.baud)
        self.core = core if isinstance(core, wiring.Component) else core(divisor=self.divisor)
        _check_core(self.core)
        self._MustUse__silence = False

    def elaborate(self, platform):
        m = Module()
        # One clock domain, driven by the PLL: the core's "sync". The PLL output net has many
        # names after flattening ("clk" in every module); Yosys keeps the one with the most
        # attributes, so "keep" makes CLOCK_NET the name nextpnr sees, which the constraint
        # below and the fmax lookup rely on.
        m.domains.sync = sync = ClockDomain("sync")
        clk = Signal(name=self.CLOCK_NET, attrs={"keep": 1})
        m.d.comb += sync.clk.eq(clk)
        locked = Signal()

        ref = platform.request(platform.default_clk, dir="-")
        if self.board.family == "ice40":
            # The iCEBreaker oscillator sits on the PLL's dedicated input pad.
            m.submodules.pll = Instance(
                "SB_PLL40_PAD", i_PACKAGEPIN=ref.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk, o_LOCK=locked, **self.pll.params())
        else:
            m.submodules.ref_buf = ref_buf = io.Buffer("i", ref)
            m.submodules.pll = Instance(
                "EHXPLLL", i_CLKI=ref_buf.i, i_CLKFB=clk, o_CLKOP=clk, o_LOCK=locked,
                i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
                i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0, **self.pll.params())
        platform.add_clock_constraint(clk, self.clock_mhz * 1e6)

        m.submodules.lock_reset = lock_reset = LockReset(self.LOCK_HOLD)
        m.d.comb += lock_reset.locked.eq(locked)
        if self.board.family == "ecp5":
            # The reset reaches ~5,000 flip-flops across the die: through a clock buffer onto a
            # global network (nextpnr promotes only clocks by itself), not fabric routing, which
            # took 9-12 ns to the farthest of them
            rst = Signal(name="rst_global")
            m.submodules.rst_buf = Instance("DCCA", i_CLKI=lock_reset.rst, i_CE=1, o_CLKO=rst)
            m.d.comb += sync.rst.eq(rst)
        else:
            m.d.comb += sync.rst.eq(lock_reset.rst)

        # UART pins. The ports carry the resource's inversion flag (PinsN; neither board has
        # one) and io.Buffer applies it, so rx_buf.i / tx_buf.o are true logic levels. The line
        # is asynchronous to our clock: two flip-flops before the core, idle high so the reset
        # shows no start bit.
        m.submodules.core = self.core
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.rx_sync = FFSynchronizer(rx_buf.i, self.core.uart_rx, init=1)
        m.d.comb += tx_buf.o.eq(self.core.uart_tx)
        return m


class LockReset(Elaboratable):
    """The core's reset from the PLL's LOCK, in the PLL's clock domain ("sync").

    LOCK comes from the PLL's own logic, asynchronous to its output: two flip-flops synchronise
    it. The reset then stays high ``hold`` cycles more, since LOCK can chatter while the loop
    settles, and rises again two cycles after LOCK falls. These registers are reset-less (they
    make the reset; they start from their init values at configuration, reset asserted), and
    ``rst`` is a register, so the core sees a clean reset released on a clock edge.
    """

    def __init__(self, hold):
        self.hold = hold
        self.locked = Signal()
        self.rst = Signal(init=1, reset_less=True)

    def elaborate(self, platform):
        m = Module()
        lock_sync = Signal()
        m.submodules.sync_ff = FFSynchronizer(self.locked, lock_sync)
        left = Signal(range(self.hold + 1), init=self.hold, reset_less=True)
        with m.If(~lock_sync):
            m.d.sync += left.eq(self.hold)
        with m.Elif(left != 0):
            m.d.sync += left.eq(left - 1)
        m.d.sync += self.rst.eq(~lock_sync | (left != 0))
        return m


def _check_core(core):
    members = dict(core.signature.members)
    for name, want in core_signature.members.items():
        got = members.get(name)
        # Flow and width must match; an init value (idle-high UART lines) is the core's choice.
        if got is None or not got.is_port or got.flow != want.flow or got.shape != want.shape:
            raise TypeError(f"core top {type(core).__name__} must have {name}: "
                            f"{'In' if want.flow == In else 'Out'}(1) (core-top contract: "
                            "uart_rx In(1), uart_tx Out(1))")
