"""The device's memory map, its token-step schedule, and the image the host uploads.

One description serves three readers: the gateware (``hw.engine`` elaborates its memories and
its sequencer from ``DeviceLayout``), the host (it uploads ``DeviceLayout.image``), and the tests.
Everything here depends only on the model's dimensions and the lane count, never on weights, so
a bitstream built for a layout accepts any checkpoint with the same dimensions.

Byte address space (24 bits, little-endian words; docs/architecture.md has the table):

========== ========= =====================================================================
region     base      contents
========== ========= =====================================================================
weights    0x000000  packed ternary words of L = lanes / 5 bytes, back to back: byte l of word
                     w at ``w * L + l``
embedding  0x800000  bf16 [vocab, d], row-major
pg         0x900000  32-bit words: (gain | pre << 16) per element of each projection's input,
                     then (c | eps << 16) after the last element (the op's "header")
aux        0xA00000  bf16: keep (1 - lower bound) per layer and channel, down gains per layer
logits     0xB00000  bf16 [vocab] of the last step (read only)
counters   0xC00000  32-bit activity counters (read only, snapshot on reading byte 0)
scratch    0xD00000  64 bytes the host owns (it keeps the uploaded model's hash there)
========== ========= =====================================================================
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from .bitexact import DeviceModel
from .config import ModelConfig
from .formats import encode
from .pack import TRITS_PER_BYTE, pack_ternary

__all__ = ["Op", "DeviceLayout", "REGIONS", "COUNTERS", "SCRATCH_BYTES", "ZERO_TRITS_BYTE"]

REGIONS = {
    "weights": 0x000000,
    "embedding": 0x800000,
    "pg": 0x900000,
    "aux": 0xA00000,
    "logits": 0xB00000,
    "counters": 0xC00000,
    "scratch": 0xD00000,
}
REGION_SHIFT = 20  # regions are told apart by address bits [20, 24)
SCRATCH_BYTES = 64
ZERO_TRITS_BYTE = 121  # five zero trits: the padding of a row's last word
BF16_BYTES = 2  # embedding and aux words
PG_WORD_BYTES = 4  # gain | pre << 16

#: The activity counters, 32 bits each, in address order (docs/architecture.md).
COUNTERS = (
    "cycles",          # every cycle since the last power-up (wraps)
    "busy_cycles",     # cycles with a token step in progress
    "steps",           # token steps completed
    "weight_words",    # weight words (P trits each) consumed by the ternary lanes
    "quant_elements",  # elements through the RMSNorm + quantiser (3 L-Muls each: u, v, code)
    "mlgru_elements",  # channel updates (5 L-Muls each)
    "glu_elements",    # GLU pairs (1 L-Mul plus the down projection's quantiser)
    "post_rows",       # accumulators rescaled (1 L-Mul each)
    "lmul_ops",        # L-Mul operations, the sum of the above with their weights
    "quant_busy",      # cycles the quantiser holds a vector (first element in .. scale out)
    "glu_busy",        # cycles the GLU stage's quantiser holds a vector
    "mlgru_busy",      # cycles with channel updates inside the MLGRU engine
    "lanes_starved",   # cycles a weight word waits because the lanes have no codes yet
    "post_starved",    # cycles an accumulator waits for its op's scale
)

#: Where each op's result goes.
DESTS = ("buf_i", "buf_f", "mlgru", "resid", "glu", "logits")
#: Where each op's int8 codes come from: the quantiser fed from x in memory, from the MLGRU
#: engine, straight from the residual add's output (x as it is being written: the quantiser
#: loads while the previous op's rows stream), or from the token's embedding row (the step's
#: first op, which writes x as it goes); or the GLU stage's own quantiser.
SOURCES = ("x", "mlgru", "glu", "resid", "embedding")


@dataclasses.dataclass(frozen=True)
class Op:
    """One BitLinear of the token step: quantise its input, stream its weights, route its rows."""

    name: str
    layer: int
    rows: int
    cols: int
    source: str
    dest: str
    word_base: int  # first weight word
    words_per_row: int
    pg_base: int  # pg word of element 0 (source x/mlgru)
    pg_header: int  # pg word of the op's (c, eps): after the elements, or alone (source glu)
    aux_base: int  # aux word of the keep (dest mlgru) or down-gain (dest glu) vector
    x_version: int  # x commits (the embedding row, residual adds) that must precede the quantiser
    use_keep: bool

    @property
    def words(self) -> int:
        return self.rows * self.words_per_row


class DeviceLayout:
    """The memory map and schedule for ``config`` on a device with ``lanes`` ternary lanes.

    ``lanes`` must be a multiple of 5: a weight word is ``lanes / 5`` packed bytes (5 trits each).
    """

    def __init__(self, config: ModelConfig, lanes: int):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 5 or lanes % TRITS_PER_BYTE:
            raise ValueError(f"lanes must be a positive multiple of {TRITS_PER_BYTE}, got {lanes!r}")
        self.config, self.lanes = config, lanes
        self.word_bytes = lanes // TRITS_PER_BYTE
        d, inter, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
        self.ops: list[Op] = []
        word = pg = 0
        x_version = 1  # the embedding row's copy into x is x's first commit

        def add(name, layer, rows, cols, source, dest, aux_base=0, use_keep=False):
            nonlocal word, pg, x_version
            wpr = -(-cols // lanes)
            has_pg = source != "glu"
            header = pg + cols if has_pg else pg
            op = Op(name, layer, rows, cols, source, dest, word, wpr, pg, header, aux_base, x_version, use_keep)
            self.ops.append(op)
            word += rows * wpr
            pg += cols + 1 if has_pg else 1  # the glu op keeps only its header (c, eps) here
            if dest == "resid":
                x_version += 1

        for n in range(L):
            keep_base = n * d
            # the first op after a residual add takes x from the add's output stream
            add(f"L{n}.i", n, d, d, "embedding" if n == 0 else "resid", "buf_i")
            add(f"L{n}.f", n, d, d, "x", "buf_f")
            add(f"L{n}.g", n, d, d, "x", "mlgru", aux_base=keep_base,
                use_keep=config.use_lower_bound and n > 0)
            add(f"L{n}.o", n, d, d, "mlgru", "resid")
            add(f"L{n}.gate", n, 2 * inter, d, "resid", "glu", aux_base=L * d + n * inter)
            add(f"L{n}.down", n, d, inter, "glu", "resid")
        add("head", L, config.vocab_size, d, "resid", "logits")
        self.weight_words = word
        self.pg_words = pg
        self.aux_words = L * d + L * inter
        self.embedding_words = config.vocab_size * d
        self.x_commits = x_version  # x versions reached by the end of a step

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def ternary_weights(self) -> int:
        return sum(op.rows * op.cols for op in self.ops)

    @property
    def lane_slots(self) -> int:
        """Lane-cycles the weights occupy (rows padded to whole words): cycles of pure streaming."""
        return self.weight_words

    @property
    def region_bytes(self) -> dict[str, int]:
        """Bytes of each writable region of the image, from the dimensions alone (no weights)."""
        return {
            "weights": self.weight_words * self.word_bytes,
            "embedding": BF16_BYTES * self.embedding_words,
            "pg": PG_WORD_BYTES * self.pg_words,
            "aux": BF16_BYTES * self.aux_words,
        }

    @property
    def image_bytes(self) -> int:
        """On-chip memory the model's image takes, before any buffer of the engine's own."""
        return sum(self.region_bytes.values())

    def describe(self) -> dict:
        c = self.config
        return {
            "vocab": c.vocab_size, "d": c.hidden_size, "layers": c.num_hidden_layers,
            "intermediate": c.intermediate_size, "lanes": self.lanes,
            "lower_bound": c.use_lower_bound, "weight_words": self.weight_words,
        }

    # -- the image -----------------------------------------------------------------------------

    def image(self, device: DeviceModel) -> dict[str, bytes]:
        """The bytes of each writable region for ``device`` (a ``golden.bitexact.DeviceModel``
        of this layout's dimensions)."""
        if device.config.to_dict() != self.config.to_dict():
            raise ValueError("the device model's dimensions differ from the layout's")
        bf = lambda values: encode(np.asarray(values, np.float64), "bf16").astype("<u2")  # noqa: E731
        weights = bytearray(self.weight_words * self.word_bytes)
        pg = np.zeros(self.pg_words, "<u4")
        aux = np.zeros(self.aux_words, "<u2")
        eps = {"x": device.eps_d, "mlgru": device.eps_d, "resid": device.eps_d, "embedding": device.eps_d,
               "glu": device.eps_i}
        for op in self.ops:
            layer = device.layers[op.layer] if op.layer < self.config.num_hidden_layers else None
            proj, pre = self._projection(device, op, layer)
            matrix = proj.weight
            if op.name.endswith(".gate"):  # rows j and I + j side by side: the GLU takes pairs
                inter = self.config.intermediate_size
                matrix = np.stack([matrix[:inter], matrix[inter:]], axis=1).reshape(matrix.shape)
            self._place_rows(weights, op, matrix)
            header = int(bf(proj.scale)) | int(bf(eps[op.source])) << 16
            pg[op.pg_header] = header
            if op.source != "glu":
                pg[op.pg_base:op.pg_base + op.cols] = bf(proj.gain).astype(np.uint32) | bf(pre).astype(np.uint32) << 16
            if op.dest == "mlgru" and layer["keep"] is not None:
                aux[op.aux_base:op.aux_base + op.rows] = bf(np.broadcast_to(layer["keep"], (op.rows,)))
            if op.dest == "glu":
                down = layer["down"]
                aux[op.aux_base:op.aux_base + down.gain.size] = bf(down.gain)
        return {
            "weights": bytes(weights),
            "embedding": bf(device.embedding).tobytes(),
            "pg": pg.tobytes(),
            "aux": aux.tobytes(),
        }

    def _projection(self, device, op, layer):
        if layer is None:
            return device.head, device.norm
        kind = op.name.split(".")[1]
        pre = {"i": "attn_norm", "f": "attn_norm", "g": "attn_norm", "o": "g_norm", "gate": "mlp_norm"}.get(kind)
        proj = layer["o_code" if kind == "o" else kind]
        return proj, (layer[pre] if pre else None)

    def _place_rows(self, weights: bytearray, op: Op, matrix: np.ndarray):
        row_bytes = op.words_per_row * self.word_bytes
        packed = np.frombuffer(pack_ternary(matrix), np.uint8).reshape(op.rows, -1)
        rows = np.full((op.rows, row_bytes), ZERO_TRITS_BYTE, np.uint8)
        rows[:, :packed.shape[1]] = packed
        words = rows.reshape(op.rows * op.words_per_row, self.word_bytes)
        view = np.frombuffer(weights, np.uint8).reshape(-1, self.word_bytes)
        view[op.word_base:op.word_base + op.words] = words

    def blocks(self, device: DeviceModel, block_size: int = 1024):
        """``(address, bytes)`` pieces of the image, at most ``block_size`` bytes each."""
        for region, data in self.image(device).items():
            for off in range(0, len(data), block_size):
                yield REGIONS[region] + off, data[off:off + block_size]

    def image_hash(self, device: DeviceModel) -> str:
        digest = hashlib.sha256()
        for region, data in sorted(self.image(device).items()):
            digest.update(region.encode())
            digest.update(data)
        return digest.hexdigest()
