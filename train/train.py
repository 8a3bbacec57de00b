"""Train a small byte-level HGRNBit model on the Python standard library corpus.

    python -m train.train --config {ecp5,up5k} --out models/NAME --minutes M [--seed S] [--steps N]

The run is time-budgeted. The learning-rate schedule follows the paper's recipe: linear warmup,
then a cosine decay whose amplitude is halved at 50 % of training (the "learning rate halved
midway"), reaching 0 at the end. With ``--steps N`` the schedule runs over N steps. Otherwise it
runs over training wall time: the first steps are timed to size a reserve for the final
evaluation, which fixes a deadline (``--minutes`` minus the reserve), and the schedule's progress is
the time since warmup over the time to that deadline. (Progress by time rather than by a step
count estimated from the first minute keeps the cosine ending at the budget when other work on a
shared machine slows down or speeds up the steps.)
Weight decay (AdamW, projection matrices only) is switched off at the midpoint too (the two-stage
recipe of the BitNet b1.58 training notes).

At the end: held-out bits/byte on the first 200 kB of the held-out split (non-overlapping 256-byte
windows, state reset per window, bytes 1..255 of each window predicted), and the model folder:
``config.json``, ``model.safetensors`` (float32 latent weights, official key names) and
``train_log.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from golden import corpus
from golden.config import ModelConfig
from train.model import BitLinear, HGRNBitForCausalLM

CONFIGS = {
    # name: (hidden_size, num_hidden_layers, intermediate_size), peak learning rate
    "ecp5": (dict(hidden_size=192, num_hidden_layers=3, intermediate_size=512), 6e-3),
    "up5k": (dict(hidden_size=112, num_hidden_layers=2, intermediate_size=224), 8e-3),
}
VOCAB = 256
LN2 = math.log(2.0)
EVAL_BYTES = 200_000
EVAL_WINDOW = 256


def model_config(name: str) -> ModelConfig:
    shape, _ = CONFIGS[name]
    return ModelConfig(vocab_size=VOCAB, **shape,
                       extra={"bos_token_id": None, "eos_token_id": None, "torch_dtype": "float32"})


def cosine_halved(p: float, peak: float) -> float:
    """Post-warmup learning rate at progress ``p`` in [0, 1]: a cosine from ``peak`` to 0 whose
    amplitude is halved from the midpoint on (the paper's "learning rate halved midway")."""
    return peak * 0.5 * (1.0 + math.cos(math.pi * p)) * (1.0 if p < 0.5 else 0.5)


def batch_windows(data: np.ndarray, rng: np.random.Generator, batch: int, length: int) -> torch.Tensor:
    starts = rng.integers(0, len(data) - length, size=batch)
    idx = starts[:, None] + np.arange(length)[None, :]
    return torch.from_numpy(data[idx].astype(np.int64))


@torch.no_grad()
def heldout_bits_per_byte(model: HGRNBitForCausalLM, data: np.ndarray, window: int = EVAL_WINDOW,
                          batch: int = 64) -> tuple[float, int]:
    """Mean bits/byte over non-overlapping windows (state reset per window, bytes 1..W-1 of each
    window predicted from the bytes before them). Returns (bits/byte, bytes predicted)."""
    was_training = model.training
    model.eval()
    n = len(data) // window
    windows = torch.from_numpy(data[: n * window].astype(np.int64).reshape(n, window))
    total_nats, count = 0.0, 0
    for b in range(0, n, batch):
        w = windows[b: b + batch]
        logits = model(w[:, :-1])
        total_nats += F.cross_entropy(logits.reshape(-1, VOCAB), w[:, 1:].reshape(-1), reduction="sum").item()
        count += w[:, 1:].numel()
    model.train(was_training)
    return total_nats / count / LN2, count


def save_model(model: HGRNBitForCausalLM, cfg: ModelConfig, out: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.json")
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})


def param_groups(model: HGRNBitForCausalLM, weight_decay: float):
    decay, no_decay = [], []
    for mod in model.modules():
        if isinstance(mod, BitLinear):
            decay.append(mod.weight)
    decay_ids = {id(p) for p in decay}
    no_decay = [p for p in model.parameters() if id(p) not in decay_ids]
    return [{"params": decay, "weight_decay": weight_decay, "base_wd": weight_decay},
            {"params": no_decay, "weight_decay": 0.0, "base_wd": 0.0}]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--out", type=Path, required=True, help="model folder to write")
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-time budget of the whole run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="fix the step count instead of timing")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=256, help="training window length (predictions per window)")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default per config)")
    ap.add_argument("--warmup", type=int, default=100, help="warmup steps (at most 10%% of the total)")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (0: off)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=float, default=30.0, help="seconds between progress lines")
    args = ap.parse_args(argv)

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cfg = model_config(args.config)
    peak = args.lr if args.lr is not None else CONFIGS[args.config][1]
    budget = args.minutes * 60.0

    def log(msg: str) -> None:
        print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)

    train_data = corpus.load_split("train")
    heldout = corpus.load_split("heldout", max_bytes=EVAL_BYTES)
    fingerprint = corpus.corpus_fingerprint()
    model = HGRNBitForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"config {args.config}: d={cfg.hidden_size} L={cfg.num_hidden_layers} I={cfg.intermediate_size} "
        f"ternary weights {cfg.ternary_weights_per_token:,}, parameters {n_params:,}")
    log(f"corpus {fingerprint}: train {len(train_data):,} B, held-out eval {len(heldout):,} B; "
        f"batch {args.batch} x {args.seq + 1}, peak lr {peak:g}, torch {torch.__version__}")

    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=peak, betas=(0.9, 0.95),
                            eps=1e-8, foreach=True)
    tokens_per_step = args.batch * args.seq
    n_eval_batches = math.ceil((len(heldout) // EVAL_WINDOW) / 64)

    # Schedule. With --steps the progress p runs over steps; otherwise over training wall time: the
    # first steps are timed (from step 6, the first ones are slow with kernel JIT) to size the
    # evaluation reserve, which fixes the deadline; p = time since warmup / time to the deadline.
    # Progress by time keeps the cosine ending at the budget when other work on the machine speeds
    # up or slows down the steps (a step count fixed from the first minute does not).
    total = args.steps
    warmup = args.warmup if total is None else max(1, min(args.warmup, total // 10))
    measure_from, measure_min_steps = 6, 10
    measure_min_seconds = min(60.0, max(10.0, 0.05 * budget))
    t_measure = deadline = t_warm_end = None
    step_time = float("nan")
    history = []
    step = 0
    win_loss, win_n, win_t, win_step = 0.0, 0, time.time(), 0
    last_log = time.time()
    stopped_early = False
    loss_bits, p = float("nan"), 0.0
    model.train()
    while True:
        now = time.time()
        if (total is not None and step >= total) or (deadline is not None and now >= deadline):
            break
        step += 1
        if step <= warmup:
            lr, p = peak * step / warmup, 0.0
        else:
            if total is not None:
                p = (step - warmup) / max(1, total - warmup)
            elif deadline is not None:
                if t_warm_end is None:
                    t_warm_end = now
                p = (now - t_warm_end) / max(1e-9, deadline - t_warm_end)
            else:
                p = 0.0
            lr = cosine_halved(min(1.0, p), peak)
        for group in opt.param_groups:
            group["lr"] = lr
            group["weight_decay"] = 0.0 if p >= 0.5 else group["base_wd"]
        x = batch_windows(train_data, rng, args.batch, args.seq + 1)
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip if args.clip > 0 else float("inf"))
        opt.step()
        loss_bits = loss.item() / LN2
        if not math.isfinite(loss_bits):
            log(f"step {step}: non-finite loss, stopping")
            stopped_early = True
            break
        win_loss += loss_bits
        win_n += 1

        now = time.time()
        if total is None and deadline is None:
            if step == measure_from - 1:
                t_measure = now
            elif step >= measure_from - 1 + measure_min_steps and now - t_measure >= measure_min_seconds:
                step_time = (now - t_measure) / (step - (measure_from - 1))
                eval_reserve = 5.0 + step_time * n_eval_batches * (64 / args.batch) * 0.5
                deadline = t_start + budget - eval_reserve
                est = step + int(max(0.0, deadline - now) / step_time)
                warmup = max(1, min(args.warmup, est // 10))
                log(f"step time {step_time:.3f} s (steps {measure_from}..{step}); eval reserve "
                    f"{eval_reserve:.0f} s; training until t={deadline - t_start:.0f} s "
                    f"(about {est} steps at this pace), warmup {warmup} steps")
        if now - last_log >= args.log_every or step == total:
            tok_s = (step - win_step) * tokens_per_step / (now - win_t)
            mean = win_loss / max(1, win_n)
            log(f"step {step}{'/' + str(total) if total else ''} p {p:.3f} lr {lr:.2e} loss {mean:.4f} "
                f"bits/byte |g| {float(gnorm):.3f} {tok_s:,.0f} tok/s")
            history.append({"step": step, "time": round(now - t_start, 1), "progress": round(p, 4),
                            "lr": lr, "train_bits_per_byte": round(mean, 5),
                            "grad_norm": round(float(gnorm), 4), "tokens_per_s": round(tok_s)})
            win_loss, win_n, win_t, win_step, last_log = 0.0, 0, now, step, now
    if win_n:  # the last partial window
        now = time.time()
        mean = win_loss / win_n
        tok_s = (step - win_step) * tokens_per_step / max(1e-9, now - win_t)
        log(f"step {step} (end) p {p:.3f} lr {lr:.2e} loss {mean:.4f} bits/byte {tok_s:,.0f} tok/s")
        history.append({"step": step, "time": round(now - t_start, 1), "progress": round(p, 4), "lr": lr,
                        "train_bits_per_byte": round(mean, 5), "grad_norm": round(float(gnorm), 4),
                        "tokens_per_s": round(tok_s)})
    train_time = time.time() - t_start
    final_train = history[-1]["train_bits_per_byte"] if history else loss_bits

    t_eval = time.time()
    bpb, n_pred = heldout_bits_per_byte(model, heldout)
    eval_time = time.time() - t_eval
    log(f"held-out: {bpb:.4f} bits/byte over {n_pred:,} predicted bytes ({eval_time:.1f} s)")
    save_model(model, cfg, args.out)
    wall = time.time() - t_start
    record = {
        "command": " ".join(["python -m train.train"] + (sys.argv[1:] if argv is None else list(argv))),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "config_name": args.config,
        "config": cfg.to_dict(),
        "ternary_weights": cfg.ternary_weights_per_token,
        "parameters": n_params,
        "seed": args.seed,
        "peak_lr": peak,
        "schedule": {"progress": "steps" if args.steps else "training wall time",
                     "fixed_total_steps": total, "warmup_steps": warmup,
                     "measured_step_seconds": None if math.isnan(step_time) else round(step_time, 4),
                     "shape": "linear warmup; cosine to 0 with amplitude halved at 50%; "
                              "weight decay off in the second half"},
        "steps": step,
        "stopped_early": stopped_early,
        "tokens_seen": step * tokens_per_step,
        "train_seconds": round(train_time, 1),
        "eval_seconds": round(eval_time, 1),
        "wall_seconds": round(wall, 1),
        "final_train_bits_per_byte": final_train,
        "heldout_bits_per_byte": round(bpb, 5),
        "heldout_eval": {"split": "heldout", "bytes": len(heldout), "window": EVAL_WINDOW,
                         "predicted_bytes": n_pred, "state_reset_per_window": True},
        "corpus": corpus.describe(),
        "corpus_fingerprint": fingerprint,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "history": history,
    }
    (args.out / "train_log.json").write_text(json.dumps(record, indent=1) + "\n")
    log(f"saved {args.out} ({step} steps, {wall / 60:.1f} min, final train {final_train:.4f}, "
        f"held-out {bpb:.4f} bits/byte)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
