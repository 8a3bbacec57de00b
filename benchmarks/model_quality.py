"""Bits per byte of the shipped models, float reference against the bit-exact model, and what each
approximation of the numerics contract costs (the ablation table).

    python -m benchmarks.model_quality [--models models/mmfree-ecp5 models/mmfree-up5k]
                                       [--max-bytes 65536] [--ablation-bytes 16384] [--no-write]

Scores the first ``--max-bytes`` of the corpus's held-out split (float reference and bit-exact
model), and the first ``--ablation-bytes`` for the ablation rows (each against the float
reference on the same bytes), in windows of 256 bytes from the zero state. The bit-exact model
runs at a few hundred bytes per second in NumPy, which sets these sizes. Writes
docs/model_quality.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from pathlib import Path

import numpy as np

from golden.bitexact import BitExactModel
from golden.checkpoint import load_checkpoint
from golden.corpus import corpus_fingerprint, load_split
from golden.float_model import FloatModel
from golden.generate import Backend, evaluate
from golden.numerics import Approximations, Numerics

ROOT = Path(__file__).resolve().parent.parent
ON = Approximations()
EXACT = Approximations.exact()

#: (label, approximations): each row switches one thing relative to its neighbours.
ABLATIONS = [
    ("contract, every approximation exact (bf16, int8, folded norms only)", EXACT),
    ("+ L-Mul for every product", dataclasses.replace(EXACT, lmul=True)),
    ("+ piecewise-linear sigmoid (and SiLU)", dataclasses.replace(EXACT, pwl_sigmoid=True)),
    ("+ fixed-point sum of squares", dataclasses.replace(EXACT, block_sumsq=True)),
    ("contract without L-Mul (exact products)", dataclasses.replace(ON, lmul=False)),
    ("contract without PWL sigmoid (exact logistic)", dataclasses.replace(ON, pwl_sigmoid=False)),
    ("contract with the plain recurrence f*h + i", dataclasses.replace(ON, decay_form=False)),
    ("**contract (the bit-exact model)**", ON),
]


def score(backend: Backend, tokens) -> float:
    return evaluate(backend, tokens, context=256)["bits_per_token"]


def measure(model_dir: Path, tokens, ablation_tokens) -> dict:
    config, params = load_checkpoint(model_dir)
    reference = Backend("float", FloatModel(config, params))

    def bitexact(approx):
        return Backend("bitexact", BitExactModel.from_params(config, params, numerics=Numerics(approx)))

    float_bits, exact_bits = score(reference, tokens), score(bitexact(ON), tokens)
    print(f"  {model_dir.name}: float {float_bits:.4f}, bit-exact {exact_bits:.4f}", file=sys.stderr)
    ablation_float = score(reference, ablation_tokens)
    rows = []
    for label, approx in ABLATIONS:
        bits = score(bitexact(approx), ablation_tokens)
        rows.append(dict(label=label, bits=bits, delta=(bits / ablation_float - 1) * 100))
        print(f"  {model_dir.name}: {label}: {bits:.4f} ({rows[-1]['delta']:+.2f}%)", file=sys.stderr)
    name = model_dir.relative_to(ROOT) if model_dir.is_relative_to(ROOT) else model_dir
    return dict(model=str(name), ternary_weights=config.ternary_weights_per_token, d=config.hidden_size,
                layers=config.num_hidden_layers, inter=config.intermediate_size, float_bits=float_bits,
                bitexact_bits=exact_bits, gap=(exact_bits / float_bits - 1) * 100,
                ablation_float_bits=ablation_float, rows=rows)


def render(results: list[dict], command: str, n_bytes: int, n_ablation: int) -> str:
    out = [
        "# Model quality: float reference against the bit-exact model",
        "",
        f"Produced by `{command}` (Python {platform.python_version()}, NumPy {np.__version__}, "
        f"corpus {corpus_fingerprint()}).",
        f"Held-out split of the Python standard library sources, first {n_bytes:,} bytes, windows of "
        "256 bytes from the zero state; bits per byte (= bits per token: the vocabulary is bytes).",
        "",
        "| model | d | L | I | ternary weights | float reference | bit-exact | gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        out.append(f"| `{r['model']}` | {r['d']} | {r['layers']} | {r['inter']} | {r['ternary_weights']:,} | "
                   f"{r['float_bits']:.4f} | {r['bitexact_bits']:.4f} | {r['gap']:+.2f}% |")
    out += ["", "Budget: the bit-exact model within 2% of the float reference.", "",
            "## Ablation: what each approximation costs", "",
            f"On the first {n_ablation:,} held-out bytes, relative to the float reference on the same "
            "bytes (positive = worse). Rows with `+` start "
            "from the all-exact contract and switch one approximation on; rows with `without` start "
            "from the full contract and switch one off.", ""]
    header = "| configuration | " + " | ".join(f"`{r['model']}`" for r in results) + " |"
    out += [header, "|---|" + "---|" * len(results)]
    out.append("| float reference (published graph, float32) | "
               + " | ".join(f"{r['ablation_float_bits']:.4f}" for r in results) + " |")
    for i, (label, _) in enumerate(ABLATIONS):
        out.append(f"| {label} | " + " | ".join(
            f"{r['rows'][i]['bits']:.4f} ({r['rows'][i]['delta']:+.2f}%)" for r in results) + " |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", type=Path,
                    default=[ROOT / "models/mmfree-ecp5", ROOT / "models/mmfree-up5k"])
    ap.add_argument("--max-bytes", type=int, default=65_536)
    ap.add_argument("--ablation-bytes", type=int, default=16_384)
    ap.add_argument("--no-write", action="store_true", help="print only; do not write docs/model_quality.md")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    tokens = load_split("heldout", max_bytes=args.max_bytes).astype(np.int64)
    ablation_tokens = tokens[: args.ablation_bytes]
    results = [measure(m.resolve(), tokens, ablation_tokens) for m in args.models]
    command = "python -m benchmarks.model_quality " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(results, command.strip(), len(tokens), len(ablation_tokens))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(text)
    if not args.no_write:
        (ROOT / "docs/model_quality.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
