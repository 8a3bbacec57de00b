"""UART receiver and transmitter, 8N1, with byte streams on the fabric side.

``divisor`` is the number of clock cycles per bit (e.g. 12 MHz / 115200 baud = 104). It must be at
least 4 so the receiver can find the middle of a bit.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx"]


def _check_divisor(divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
        raise ValueError(f"divisor (clock cycles per bit) must be an integer >= 4, got {divisor!r}")
    return divisor


class UARTRx(wiring.Component):
    """8N1 receiver.

    Attributes
    ----------
    rx : In(1)
        The serial line (idle high), asynchronous: it passes a two-flop synchroniser first.
    o : Out(stream.Signature(8))
        Received bytes. ``o.valid`` stays high until taken; a byte that completes while the
        previous one is still waiting is dropped and ``overrun`` pulses.
    framing_error : Out(1)
        One-cycle pulse: a byte whose stop bit was low was dropped.
    overrun : Out(1)
        One-cycle pulse: a byte was dropped because ``o`` was not taken in time.

    A falling edge starts a byte; the start bit is sampled again half a bit later and a glitch
    shorter than that is ignored. Data bits are sampled in the middle of each bit, LSB first, and
    the receiver re-arms in the middle of the stop bit, so each byte re-aligns to its own start
    edge (about +-4% of baud-rate mismatch tolerated at large divisors). After a framing error
    (including a break: the line held low) it waits for the line to return high before it looks
    for the next start bit, so a stuck-low line yields one error, not a stream of zero bytes.
    Latency: ``o.valid`` rises about 9.5 bit times (+ 3 cycles) after the start edge. The
    receiver never back-pressures the line (a UART cannot); the consumer must take each byte
    within one byte time.
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor

        sync1 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync1.eq(self.rx), line.eq(sync1)]

        timer = Signal(range(d))
        bits = Signal(range(8))
        shift = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"  # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), shift.eq(Cat(shift[1:], line)), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(shift)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.framing_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes to send. ``i.ready`` is high when the transmitter is idle and in the last cycle of
        a stop bit, so back-to-back bytes leave with no gap: one byte per ``10 * divisor`` cycles.
    tx : Out(1)
        The serial line, from a register (idle high).

    Latency: the start bit begins the cycle after the byte is taken.
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor

        timer = Signal(range(d))
        left = Signal(range(10))  # bits still to put on the line after the current one
        shift = Signal(9)         # data bits then the stop bit, LSB first
        busy = Signal()

        bit_done = timer == 0
        m.d.comb += self.i.ready.eq(~busy | (bit_done & (left == 0)))
        with m.If(busy & ~bit_done):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += [self.tx.eq(0), shift.eq(Cat(self.i.payload, 1)), left.eq(9),
                         timer.eq(d - 1), busy.eq(1)]
        with m.Elif(busy & (left != 0)):
            m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift[1:]), left.eq(left - 1),
                         timer.eq(d - 1)]
        with m.Elif(busy):
            m.d.sync += busy.eq(0)
        return m
