"""Fine-tune a trained model with the hardware numerics in the loop.

    python -m train.finetune_hw --model models/mmfree-ecp5 --minutes 20

The forward pass is the golden bit-exact dataflow (``golden.bitexact``) run on trainable tensors
through ``TorchNumerics``: every L-Mul, piecewise sigmoid, table reciprocal and rounding of the
contract is in the loss, with straight-through gradients. The latent weights are updated in place
and written back in Hugging Face format (the previous weights are kept as ``*.float.safetensors``
once, so the float-trained starting point is never lost).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from golden.bitexact import BitExactModel, DeviceModel
from golden.checkpoint import load_checkpoint, save_checkpoint
from golden.corpus import corpus_fingerprint, load_split
from golden.generate import Backend, evaluate
from train.hw_numerics import TorchNumerics


def hw_loss(config, params, tokens, nx) -> torch.Tensor:
    """Mean cross-entropy (nats) of tokens[:, 1:] under the bit-exact model's logits."""
    model = BitExactModel(DeviceModel.from_params(config, params, nx), numerics=nx)
    state = [torch.zeros(tokens.shape[0], config.hidden_size, dtype=torch.float64) for _ in range(config.num_hidden_layers)]
    logits, _, _ = model.forward(tokens, state)
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, config.vocab_size),
                                             tokens[:, 1:].reshape(-1))


def heldout_bits(model_dir: Path, backend: str, max_bytes: int) -> float:
    tokens = load_split("heldout", max_bytes=max_bytes).astype(np.int64)
    return evaluate(Backend.load(backend, model_dir), tokens, context=256)["bits_per_token"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="model folder, updated in place")
    ap.add_argument("--minutes", type=float, default=20.0, help="time budget for the updates")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (cosine to 0)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-bytes", type=int, default=65536, help="held-out bytes for before/after bpb")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    config, raw = load_checkpoint(args.model)
    before = {b: heldout_bits(args.model, b, args.eval_bytes) for b in ("float", "bitexact")}
    print(f"[finetune] before: float {before['float']:.4f}, bitexact {before['bitexact']:.4f} bits/byte",
          file=sys.stderr)

    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in raw.items()}
    opt = torch.optim.AdamW(params.values(), lr=args.lr, weight_decay=0.0)
    data = load_split("train")
    nx = TorchNumerics()

    def batch():
        starts = rng.integers(0, len(data) - args.context, size=args.batch)
        return torch.from_numpy(np.stack([data[s:s + args.context] for s in starts]).astype(np.int64))

    # Measure one step, then fix the schedule so the cosine reaches 0 at the budget.
    t0 = time.perf_counter()
    losses, step, total = [], 0, None
    while True:
        if total is not None and step >= total:
            break
        lr = args.lr if total is None else args.lr * 0.5 * (1 + math.cos(math.pi * step / total))
        for group in opt.param_groups:
            group["lr"] = lr
        loss = hw_loss(config, params, batch(), nx)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        opt.step()
        losses.append(loss.item() / math.log(2))
        step += 1
        if total is None and step == 3:
            per_step = (time.perf_counter() - t0) / 3
            total = max(4, int(args.minutes * 60 / per_step))
            print(f"[finetune] {per_step:.2f} s/step -> {total} steps", file=sys.stderr)
        if step % 20 == 0:
            print(f"[finetune] step {step}/{total} lr {lr:.2e} train {np.mean(losses[-20:]):.4f} bits/byte",
                  file=sys.stderr, flush=True)

    backup = args.model / "model.float.safetensors"
    if not backup.exists():
        shutil.copy(args.model / "model.safetensors", backup)
    save_checkpoint(args.model, config, {k: v.detach().to(torch.float32).numpy() for k, v in params.items()})
    after = {b: heldout_bits(args.model, b, args.eval_bytes) for b in ("float", "bitexact")}
    print(f"[finetune] after: float {after['float']:.4f}, bitexact {after['bitexact']:.4f} bits/byte",
          file=sys.stderr)
    log = {"command": " ".join(["python -m train.finetune_hw"] + (argv or sys.argv[1:])), "steps": step,
           "wall_seconds": time.perf_counter() - t0, "lr": args.lr, "batch": args.batch,
           "context": args.context, "seed": args.seed, "eval_bytes": args.eval_bytes,
           "heldout_bits_before": before, "heldout_bits_after": after,
           "final_train_bits": float(np.mean(losses[-20:])), "corpus": corpus_fingerprint()}
    (args.model / "finetune_log.json").write_text(json.dumps(log, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
