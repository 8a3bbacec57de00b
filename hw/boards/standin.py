"""A stand-in core top for board builds until the token engine lands: a UART byte echo.

It has the core-top contract (``uart_rx: In(1)``, ``uart_tx: Out(1)``, ``sync`` domain, nothing
board-specific), so ``hw.boards.BoardTop`` and ``host.build`` can be built, measured and tested
end to end. It is not the product: ``host.build.core_factory`` uses ``hw.top.core_for_model``
whenever that exists.

8N1 at ``divisor`` clock cycles per bit; every byte received is sent back. One byte is held while
the transmitter is busy; a byte arriving while that slot is full is dropped (the host's echo test
sends one byte at a time).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UartEchoStandIn"]


class UartEchoStandIn(wiring.Component):
    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)

    def __init__(self, divisor):
        if divisor < 4:
            raise ValueError(f"UART divisor must be >= 4 clock cycles per bit, got {divisor}")
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor

        # --- receiver: start bit edge, then sample each bit in its middle ---
        rx_timer = Signal(range(div + div // 2 + 1))
        rx_bits = Signal(range(10))
        rx_shift = Signal(8)
        rx_busy = Signal()
        got = Signal()              # one-cycle strobe: rx_shift holds a byte with a good stop bit

        with m.If(~rx_busy):
            with m.If(~self.uart_rx):
                # First sample one and a half bits after the start edge: the middle of bit 0.
                m.d.sync += [rx_busy.eq(1), rx_bits.eq(0), rx_timer.eq(div + div // 2 - 1)]
        with m.Elif(rx_timer != 0):
            m.d.sync += rx_timer.eq(rx_timer - 1)
        with m.Else():
            m.d.sync += [rx_timer.eq(div - 1), rx_bits.eq(rx_bits + 1)]
            with m.If(rx_bits == 8):
                m.d.sync += rx_busy.eq(0)
                m.d.comb += got.eq(self.uart_rx)     # stop bit high: a byte; low: framing error
            with m.Else():
                m.d.sync += rx_shift.eq(Cat(rx_shift[1:], self.uart_rx))

        # --- one-byte hold between receiver and transmitter ---
        held = Signal(8)
        held_valid = Signal()
        with m.If(got & ~held_valid):
            m.d.sync += [held.eq(rx_shift), held_valid.eq(1)]

        # --- transmitter: start bit, 8 data bits LSB first, stop bit ---
        tx_shift = Signal(10, init=0x3FF)
        tx_timer = Signal(range(div))
        tx_left = Signal(range(11))
        m.d.comb += self.uart_tx.eq(tx_shift[0])
        with m.If(tx_left == 0):
            with m.If(held_valid):
                m.d.sync += [tx_shift.eq(Cat(0, held, 1)), tx_left.eq(10),
                             tx_timer.eq(div - 1), held_valid.eq(0)]
        with m.Elif(tx_timer != 0):
            m.d.sync += tx_timer.eq(tx_timer - 1)
        with m.Else():
            m.d.sync += [tx_shift.eq(Cat(tx_shift[1:], 1)), tx_left.eq(tx_left - 1),
                         tx_timer.eq(div - 1)]
        return m
