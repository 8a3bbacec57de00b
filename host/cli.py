"""``mmfree``: the command-line tool. Thin: parse, call the library, print.

Every expected failure prints one line ``mmfree: error: ...`` on stderr and exits nonzero, with
no traceback (``--verbose`` adds the traceback for bug reports).
"""

from __future__ import annotations

import argparse
import codecs
import json
import sys
import time
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILURE = 1


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    p.add_argument("--verbose", action="store_true", help="show tracebacks and extra detail")


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="model folder (config.json + model.safetensors)")
    p.add_argument("--backend", choices=("float", "bitexact"), default="bitexact",
                   help="golden model to run (default: bitexact, the hardware arithmetic)")
    p.add_argument("--mixer", choices=("code", "paper"), default="code",
                   help="MLGRU output gate: the released code's (default) or the paper's")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmfree", description="MatMul-free LMs on open-toolchain FPGAs")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate text (greedy)")
    _add_model(gen)
    gen.add_argument("--prompt", required=True, help="prompt text (UTF-8; the vocabulary is bytes)")
    gen.add_argument("--max-tokens", type=int, default=64, help="tokens to generate (default 64)")
    _add_common(gen)
    gen.set_defaults(func=cmd_generate)

    ev = sub.add_parser("eval", help="bits per token of a text file")
    _add_model(ev)
    ev.add_argument("--text", required=True, type=Path, help="text file to score")
    ev.add_argument("--context", type=int, default=256,
                    help="window length; each window starts from the zero state (default 256)")
    ev.add_argument("--max-bytes", type=int, default=None, help="score only the first N bytes")
    _add_common(ev)
    ev.set_defaults(func=cmd_eval)

    # Board builds (host.build). The core is the token engine (hw.top.core_for_model) once it is
    # in the tree; until then a UART-echo stand-in, and the output says so.
    bld = sub.add_parser(
        "build", help="build a bitstream for a board (placeholder core until the engine lands)",
        description="Synthesise, place and route the design for a board with the pip-installed "
                    "open toolchain (the synth extra) and print utilisation and fmax. Until the "
                    "token engine lands (hw.top.core_for_model) the core is a UART-echo "
                    "stand-in: a placeholder, said so in the output.")
    bld.add_argument("--board", required=True, choices=("icebreaker", "ulx3s-85f"))
    bld.add_argument("--model", required=True, type=Path, help="model folder (config.json)")
    bld.add_argument("--clock-mhz", type=float, default=None,
                     help="core clock (default: the board's, 24 on icebreaker, 100 on ulx3s-85f)")
    bld.add_argument("--out", type=Path, default=None, help="build folder (default: build/BOARD)")
    bld.add_argument("--seed", type=int, default=1, help="nextpnr seed (default 1)")
    _add_common(bld)
    bld.set_defaults(func=cmd_build)
    return parser


def _byte_tokens(text: bytes, vocab_size: int) -> list[int]:
    if vocab_size != 256:
        raise ValueError(f"this model has a {vocab_size}-token vocabulary; only byte-level (256) "
                         "models can take text here")
    return list(text)


def cmd_generate(args) -> int:
    from golden.generate import Backend, generate

    if args.max_tokens < 0:
        raise ValueError(f"--max-tokens must be >= 0, got {args.max_tokens}")
    backend = Backend.load(args.backend, args.model, mixer=args.mixer)
    prompt = _byte_tokens(args.prompt.encode("utf-8"), backend.config.vocab_size)
    if not prompt:
        raise ValueError("--prompt must not be empty")
    # Bytes arrive one at a time; an incremental decoder holds partial UTF-8 sequences back and
    # replaces invalid ones, so the terminal never sees a broken character.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def show(token: int) -> None:
        if not args.json:
            sys.stdout.write(decoder.decode(bytes([token])))
            sys.stdout.flush()

    for token in prompt:
        show(token)

    start = time.perf_counter()
    tokens = generate(backend, prompt, args.max_tokens, on_token=show)
    elapsed = time.perf_counter() - start
    rate = (len(prompt) + len(tokens)) / elapsed if elapsed > 0 else float("inf")
    if args.json:
        print(json.dumps({"backend": args.backend, "model": str(args.model), "prompt_tokens": prompt,
                          "tokens": tokens, "text": bytes(tokens).decode("utf-8", errors="replace"),
                          "token_steps_per_second": rate}))
    else:
        print(decoder.decode(b"", final=True))
        print(f"[{args.backend}] {len(tokens)} tokens, {rate:.1f} token steps/s on the host", file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    import numpy as np

    from golden.generate import Backend, evaluate

    try:
        data = args.text.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read --text {args.text}: {exc.strerror}") from None
    if args.max_bytes is not None:
        data = data[: args.max_bytes]
    backend = Backend.load(args.backend, args.model, mixer=args.mixer)
    tokens = np.array(_byte_tokens(data, backend.config.vocab_size), dtype=np.int64)
    result = evaluate(backend, tokens, context=args.context, progress=not args.json and sys.stderr.isatty())
    result.update(backend=args.backend, model=str(args.model), text=str(args.text))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['bits_per_token']:.4f} bits/token ({args.backend}, {result['predicted_tokens']} "
              f"predicted tokens in {result['windows']} windows of {result['context']})")
    return 0


def cmd_build(args) -> int:
    from host.build import BuildError, build, core_factory, stderr_progress

    factory, core_name, placeholder = core_factory(args.model, args.board)
    out = args.out if args.out is not None else Path("build") / args.board
    try:
        result = build(args.board, factory, clock_mhz=args.clock_mhz, build_dir=out,
                       seed=args.seed, progress=stderr_progress, core_name=core_name,
                       placeholder=placeholder)
    except BuildError as exc:
        raise ValueError(str(exc)) from None
    print(result.to_json() if args.json else result.summary())
    if not result.timing_met:
        print(f"mmfree: error: timing not met: fmax {result.fmax_mhz:.1f} MHz < "
              f"{result.clock_mhz:.3f} MHz (try --clock-mhz or another --seed)", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("mmfree: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:  # every expected failure: bad input, missing files
        if args.verbose:
            raise
        print(f"mmfree: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
