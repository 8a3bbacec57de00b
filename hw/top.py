"""The device's core top: UART, link and token engine, free of board specifics.

The simulated board (``sim.board``) runs this component as it is; the board tops (``hw.boards``)
add the clock, the PLL-lock reset and the pins around it.
"""


import hashlib
import json
from pathlib import Path

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.config import ModelConfig
from golden.image import COUNTERS, REGION_SHIFT, REGIONS, DeviceLayout
from golden.numerics import NUMERICS_VERSION

from .compact.engine import CompactEngine
from .engine import TokenEngine
from .link import Link
from .uart import UARTRx, UARTTx

__all__ = ["DeviceCore", "core_for_model", "core_for_board", "build_info", "DEFAULT_LANES", "SIM_DIVISOR",
           "ENGINES"]

#: Lanes when the caller does not choose: 5 trits per byte, so a multiple of 5.
DEFAULT_LANES = 195
#: Clocks per UART bit on the simulated board: the fastest the UART takes, so an upload is quick.
SIM_DIVISOR = 4
#: The token engines: the throughput one (hw.engine, every unit its own pipelines) and the
#: compact one for small parts (hw.compact: one shared pipeline run by a program).
ENGINES = {"token": TokenEngine, "compact": CompactEngine}
#: The link's largest WRITE payload and READ length per engine (the host reads it from INFO): its
#: buffer holds two, 2 KiB for the token engine (one ECP5 block RAM), 512 bytes for the compact
#: engine (one iCE40 block RAM of 30, where 2 KiB would take four).
LINK_PAYLOAD = {"token": 1024, "compact": 256}
#: The link's build options per engine (``Link``): the token engine's boards run fast clocks and
#: have room; the compact engine's (the UP5K at 24 MHz) need neither the registers on the link's
#: streams nor a byte-wide checksum.
LINK_OPTIONS = {"token": {"registered": True, "serial_checksum": False},
                "compact": {"registered": False, "serial_checksum": True}}
#: Frame timeout of the link, in bit times (USB bridges leave gaps inside a frame).
TIMEOUT_BITS = 60_000

_SOURCES = ("hw", "golden/image.py", "golden/numerics.py", "golden/formats.py", "golden/lmul.py")


def _rtl_digest() -> str:
    """Digest of the gateware's sources: two builds with the same digest run the same RTL."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for name in _SOURCES:
        path = root / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(root).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def build_info(layout: DeviceLayout, divisor: int, engine: str = "token") -> dict:
    """What the device reports about itself (INFO): enough for the host to refuse a model or an
    image that does not match."""
    info = {
        "numerics": NUMERICS_VERSION,
        "engine": engine,
        "model": layout.describe(),
        "uart_divisor": divisor,
        # each region's base address in units of 2**REGION_SHIFT (1 MiB): the iCEBreaker's INFO
        # then fits one 512-byte block RAM
        "region_mib": {name: base >> REGION_SHIFT for name, base in REGIONS.items()},
        # the counters the engine counts (the others of COUNTERS read 0) and, for an engine that
        # leaves a step's fixed work uncounted, that work: the host multiplies it by the steps
        "counters": list(getattr(ENGINES[engine], "COUNTED", COUNTERS)),
    }
    if hasattr(ENGINES[engine], "per_step"):
        info["per_step"] = ENGINES[engine].per_step(layout)
    info["build"] = hashlib.sha256((json.dumps(info, sort_keys=True) + _rtl_digest()).encode()).hexdigest()[:16]
    return info


class DeviceCore(wiring.Component):
    """UART receiver and transmitter, the protocol link and the token engine.

    Parameters
    ----------
    layout : golden.image.DeviceLayout
    divisor : int
        Clock cycles per UART bit (clock / baud rate).
    image : dict, optional
        A model preloaded into the memories (see ``TokenEngine``).
    engine : str
        Which token engine (``ENGINES``): ``"token"`` (default) or ``"compact"``.

    Attributes
    ----------
    uart_rx : In(1)
        The serial input, idle high.
    uart_tx : Out(1)
        The serial output, idle high.
    """

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)

    def __init__(self, layout: DeviceLayout, divisor: int, image=None, engine: str = "token"):
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.layout, self.divisor = layout, divisor
        self.engine = ENGINES[engine](layout, image)
        self.info = build_info(layout, divisor, engine)
        self.link = Link(
            info=json.dumps(self.info, separators=(",", ":"), sort_keys=True).encode(),
            logits_base=REGIONS["logits"], vocab=layout.config.vocab_size,
            counters_base=REGIONS["counters"], counters_len=4 * len(COUNTERS),
            timeout_cycles=TIMEOUT_BITS * divisor, max_payload=LINK_PAYLOAD[engine],
            **LINK_OPTIONS[engine])
        self.rx, self.tx = UARTRx(divisor), UARTTx(divisor)  # validate the divisor now
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx, m.submodules.tx = self.rx, self.tx
        m.submodules.link, m.submodules.engine = self.link, self.engine
        m.d.comb += [self.rx.rx.eq(self.uart_rx), self.uart_tx.eq(self.tx.tx)]
        wiring.connect(m, self.rx.o, self.link.rx)
        wiring.connect(m, self.link.tx, self.tx.i)
        wiring.connect(m, self.link.engine, self.engine)
        return m


def core_for_model(config: ModelConfig, *, lanes: int = DEFAULT_LANES, divisor: int,
                   image=None, engine: str = "token") -> DeviceCore:
    """The core top for a model's dimensions (from its ``config.json``)."""
    return DeviceCore(DeviceLayout(config, lanes), divisor, image, engine)


def core_for_board(board: str, layout: DeviceLayout, divisor: int, image=None) -> DeviceCore:
    """The core a board carries (its engine, ``hw.boards.BOARDS``) for ``layout``: what the
    build, the simulated board and the benchmarks all run."""
    from .boards import get_board

    return DeviceCore(layout, divisor, image, get_board(board).engine)
