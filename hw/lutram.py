"""A buffer in distributed (LUT) RAM, cut into banks whose reads are registered before they meet."""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .pipeline import replicas

__all__ = ["BankedLutRam"]


class BankedLutRam(wiring.Component):
    """``depth`` words of ``width`` bits in LUT RAM, one write port and one read port.

    A LUT RAM of a few hundred words is dozens of 16-word RAMs behind a wide multiplexer: its
    address register, the RAMs, the multiplexer and a long route in one cycle were among the
    device's slowest paths. Here the words are kept in banks of ``bank_words``, each with a
    synchronous read port at its own copy of the address; the bank is picked from the read ports'
    registers a cycle later.

    Parameters
    ----------
    width, depth : int
        The word and the number of words.
    bank_words : int
        Words per bank (a multiple of 16, the ECP5 LUT RAM's depth, is best).
    attrs : dict
        Attributes of each bank's ``Memory`` (e.g. ``ram_style``).

    Attributes
    ----------
    w_addr, w_data, w_en : In
        The write, taken in the cycle ``w_en`` is high and readable from the next. Drive them from
        registers: the bank's write enable is one LUT of ``w_en`` and the address's bank bits.
    r_addr : In(range(depth))
        The read address.
    r_data : Out(width)
        The word at ``r_addr`` of ``LATENCY`` (3) cycles before: the address copies, the banks'
        read ports, then the pick. A register. Throughput one read per cycle; no back-pressure.
        A read of a word in the cycle it is written is undefined (pass ``NO_RW_CHECK`` in
        ``attrs`` when the caller keeps reads and writes apart, as a double buffer does).
    """

    LATENCY = 3

    def __init__(self, width: int, depth: int, *, bank_words: int = 64, attrs=None):
        for name, value in (("width", width), ("depth", depth), ("bank_words", bank_words)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if bank_words & (bank_words - 1):
            raise ValueError(f"bank_words must be a power of two, got {bank_words}")
        self.width, self.depth, self.bank_words = width, depth, bank_words
        self.banks = -(-depth // bank_words)
        self.attrs = dict(attrs or {})
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(width), "w_en": In(1),
            "r_addr": In(range(depth)), "r_data": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        low = (min(self.bank_words, self.depth) - 1).bit_length()  # address bits within a bank
        bank_of = lambda addr: addr[low:] if self.banks > 1 else 0  # noqa: E731
        # the read address, one copy per bank (one register driving every bank's RAMs would span
        # them)
        addr_copies = replicas("r_addr", low, self.banks)
        m.d.sync += [a.eq(self.r_addr[:low]) for a in addr_copies]
        bank_data = []
        for b in range(self.banks):
            depth = min(self.bank_words, self.depth - b * self.bank_words)
            m.submodules[f"bank{b}"] = mem = memory.Memory(shape=self.width, depth=depth, init=[],
                                                          attrs=self.attrs)
            write, read = mem.write_port(), mem.read_port(domain="sync")
            m.d.comb += [write.addr.eq(self.w_addr[:low]), write.data.eq(self.w_data),
                         write.en.eq(self.w_en & (bank_of(self.w_addr) == b) if self.banks > 1 else self.w_en),
                         read.addr.eq(addr_copies[b])]
            bank_data.append(read.data)
        out = Signal(self.width, name="r_data_q", reset_less=True)
        if self.banks > 1:
            pick, pick_q = Signal(range(self.banks)), Signal(range(self.banks))
            m.d.sync += [pick.eq(bank_of(self.r_addr)), pick_q.eq(pick), out.eq(Array(bank_data)[pick_q])]
        else:
            m.d.sync += out.eq(bank_data[0])
        m.d.comb += self.r_data.eq(out)
        return m
