"""The token engine's port to the link: the one interface between the protocol and the model.

The link (UART, frames, commands) drives this port; the engine serves it. Nothing else crosses
between the two, so either side can be tested against a stand-in for the other.

``bus``/``rdata``
    Byte access to the engine's address space (the memory map is the engine's: weights,
    embedding, constants, logits, counters; see ``hw.engine`` and docs/architecture.md). A write
    request returns nothing; a read request returns exactly one byte on ``rdata``, in request
    order. ``bus.ready`` may stay low while a token step runs: the link issues bus requests
    between steps.
``step``/``done``
    ``step`` carries a token id; the engine runs one token step and answers on ``done`` with the
    argmax token id. One step is in flight at a time (``step.ready`` is low until ``done`` is
    taken). A bus request that waits goes first: ``step.ready`` is low while ``bus.valid`` is
    high, so requests issued before a step are served before it even when the link's streams
    pass through registers of equal latency.
``reset``
    A one-cycle strobe: the recurrent state restarts from zero at the next step.
"""

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ADDR_WIDTH", "TOKEN_WIDTH", "bus_request", "engine_port"]

ADDR_WIDTH = 24  # 16 MiB of byte addresses: the largest model we place is under 1 MiB
TOKEN_WIDTH = 16

bus_request = data.StructLayout({"addr": ADDR_WIDTH, "write": 1, "data": 8})

#: The port as the engine sees it (the link uses ``engine_port.flip()``).
engine_port = wiring.Signature({
    "bus": In(stream.Signature(bus_request)),
    "rdata": Out(stream.Signature(8)),
    "step": In(stream.Signature(TOKEN_WIDTH)),
    "done": Out(stream.Signature(TOKEN_WIDTH)),
    "reset": In(1),
})
