"""``mmfree``: the command-line tool. Thin: parse, call the library, print.

Every expected failure prints one line ``mmfree: error: ...`` on stderr and exits nonzero, with
no traceback (``--verbose`` adds the traceback for bug reports).
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import json
import sys
import time
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILURE = 1


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    p.add_argument("--verbose", action="store_true", help="show tracebacks and extra detail")


def _add_model(p: argparse.ArgumentParser, device: bool = False) -> None:
    p.add_argument("--model", required=True, type=Path, help="model folder (config.json + model.safetensors)")
    if device:
        p.add_argument("--backend", choices=("device", "float", "bitexact"), default="device",
                       help="device: the FPGA at --port, or a simulated board (default); float or "
                            "bitexact: the golden models on the host")
    else:
        p.add_argument("--backend", choices=("float", "bitexact"), default="bitexact",
                       help="golden model to run (default: bitexact, the hardware arithmetic)")
    p.add_argument("--mixer", choices=("code", "paper"), default="code",
                   help="MLGRU output gate: the released code's (default) or the paper's")


def _board_names():
    from hw.boards import BOARDS

    return tuple(BOARDS)


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", default=None,
                   help="serial port or URL of the board (/dev/ttyUSB0, socket://HOST:PORT); "
                        "default: start a simulated board")
    p.add_argument("--board", choices=_board_names(), default="ulx3s-85f",
                   help="board the bitstream is for: its lanes, clock and baud rate (default ulx3s-85f)")
    p.add_argument("--force-upload", action="store_true", help="upload the model even if the device holds it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmfree", description="MatMul-free LMs on open-toolchain FPGAs")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate text (greedy)")
    _add_model(gen, device=True)
    _add_device(gen)
    gen.add_argument("--prompt", required=True, help="prompt text (UTF-8; the vocabulary is bytes)")
    gen.add_argument("--max-tokens", type=int, default=64, help="tokens to generate (default 64)")
    _add_common(gen)
    gen.set_defaults(func=cmd_generate)

    sb = sub.add_parser("sim-board", help="serve a simulated board on a TCP port until Ctrl-C")
    sb.add_argument("--model", required=True, type=Path, help="model folder: sets the core's dimensions")
    sb.add_argument("--board", choices=_board_names(), default="ulx3s-85f",
                    help="the board whose core to simulate (default ulx3s-85f)")
    sb.add_argument("--tcp-port", type=int, default=0, help="TCP port to listen on (default: any free one)")
    sb.add_argument("--verbose", action="store_true", help="show tracebacks")
    sb.set_defaults(func=cmd_sim_board)

    pw = sub.add_parser("power", help="measure energy per token with a power meter while the device generates")
    pw.add_argument("--model", required=True, type=Path, help="model folder (config.json + model.safetensors)")
    _add_device(pw)
    pw.add_argument("--meter", action="append", required=True, metavar="SPEC",
                    help="a power meter: ina226:/dev/i2c-1:0x40:SHUNT_OHMS:MAX_AMPS[:RAIL] (or ina219:...), "
                         "um25c:PORT (or um24c, um34c); repeat for several rails (docs/energy.md)")
    pw.add_argument("--tokens", type=int, default=64, help="tokens generated in the measured window")
    pw.add_argument("--idle", type=float, default=2.0, help="seconds of idle baseline before the window")
    pw.add_argument("--out", type=Path, default=Path("power"), help="folder for power.csv and power.png")
    _add_common(pw)
    pw.set_defaults(func=cmd_power)

    ev = sub.add_parser("eval", help="bits per token of a text file")
    _add_model(ev)
    ev.add_argument("--text", required=True, type=Path, help="text file to score")
    ev.add_argument("--context", type=int, default=256,
                    help="window length; each window starts from the zero state (default 256)")
    ev.add_argument("--max-bytes", type=int, default=None, help="score only the first N bytes")
    _add_common(ev)
    ev.set_defaults(func=cmd_eval)

    # Board builds (host.build): the device core (hw.top.core_for_model) for the model's dimensions
    bld = sub.add_parser(
        "build", help="build a bitstream for a board",
        description="Synthesise, place and route the device (UART, link, token engine for the "
                    "model's dimensions) for a board with the pip-installed open toolchain (the "
                    "synth extra) and print utilisation and fmax.")
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
    from golden.bitexact import BitExactModel
    from golden.generate import Backend, generate

    if args.max_tokens < 0:
        raise ValueError(f"--max-tokens must be >= 0, got {args.max_tokens}")
    if args.backend == "device" and args.mixer != "code":
        raise ValueError("the device implements the code's output gate only (--mixer code)")
    # the whole checkpoint is read and checked before any device is touched
    backend = (BitExactModel.from_pretrained(args.model) if args.backend == "device"
               else Backend.load(args.backend, args.model, mixer=args.mixer))
    prompt = _byte_tokens(args.prompt.encode("utf-8"), backend.config.vocab_size)
    if not prompt:
        raise ValueError("--prompt must not be empty")
    if args.backend == "device":
        return _generate_on_device(args, backend, prompt)
    show = _text_printer(not args.json)
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
        show(None)
        print(f"[{args.backend}] {len(tokens)} tokens, {rate:.1f} token steps/s on the host", file=sys.stderr)
    return 0


def _text_printer(enabled: bool):
    # Bytes arrive one at a time; an incremental decoder holds partial UTF-8 sequences back and
    # replaces invalid ones, so the terminal never sees a broken character.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def show(token: int | None) -> None:
        if enabled:
            sys.stdout.write(decoder.decode(b"", final=True) + "\n" if token is None
                             else decoder.decode(bytes([token])))
            sys.stdout.flush()

    return show


def _generate_on_device(args, model, prompt) -> int:
    from hw.boards import get_board

    from .session import open_session

    show = _text_printer(not args.json)
    with open_session(model, port=args.port, board=args.board, progress=not args.json,
                      force_upload=args.force_upload) as session:
        device = session.device
        device.reset()
        before = device.counters()
        for token in prompt:
            show(token)
        for token in prompt[:-1]:
            device.step(token)
        tokens = []
        start = time.perf_counter()
        if args.max_tokens:
            for token, _ in device.generate(prompt[-1], args.max_tokens):
                tokens.append(token)
                show(token)
        elapsed = time.perf_counter() - start
        after = device.counters()
    show(None)
    from .energy import estimate

    steps = after["steps"] - before["steps"]
    cycles = (after["busy_cycles"] - before["busy_cycles"]) / steps if steps else float("nan")
    spec = get_board(args.board)
    clock_mhz = spec.clock_mhz
    energy = estimate(before, after, spec.family, clock_mhz * 1e6, lanes=session.layout.lanes) if steps else None
    result = {
        "backend": "device", "board": args.board, "simulated": session.simulated, "url": session.url,
        "model": str(args.model), "prompt_tokens": prompt, "tokens": tokens,
        "text": bytes(tokens).decode("utf-8", errors="replace"),
        "cycles_per_token": cycles, "clock_mhz": clock_mhz,
        "tokens_per_second_at_clock": clock_mhz * 1e6 / cycles if steps else None,
        "tokens_per_second_wall": len(tokens) / elapsed if elapsed > 0 and tokens else None,
        "uploaded": session.uploaded, "upload_bytes_per_second": session.upload_rate,
        "energy_estimated_joules_per_token": energy.joules_per_token if energy else None,
    }
    if args.json:
        print(json.dumps(result))
    else:
        where = "simulated board" if session.simulated else session.url
        print(f"[device: {args.board}, {where}] {len(tokens)} tokens, {cycles:,.0f} cycles per token "
              f"(device counters): {result['tokens_per_second_at_clock']:,.0f} tokens/s at the board's "
              f"{clock_mhz:g} MHz clock", file=sys.stderr)
        if energy:
            print(f"[energy] {energy.summary()}", file=sys.stderr)
    return 0


def cmd_power(args) -> int:
    from golden.bitexact import BitExactModel
    from hw.boards import get_board

    from .power.measure import parse_meter_spec, run_power
    from .session import open_session

    meters = [parse_meter_spec(spec) for spec in args.meter]  # bad specs fail before any device work
    model = BitExactModel.from_pretrained(args.model)
    with open_session(model, port=args.port, board=args.board, progress=not args.json,
                      force_upload=args.force_upload) as session:
        session.device.reset()
        result = run_power(session.device, meters, tokens=args.tokens, idle_seconds=args.idle,
                           out_dir=str(args.out), board=args.board, clock_mhz=get_board(args.board).clock_mhz,
                           log=(lambda s: None) if args.json else (lambda s: print(s, file=sys.stderr)))
    if args.json:
        measured, estimated = result["measured"], result["estimated"]
        rails = {name: dataclasses.asdict(r) for name, r in measured.rails.items()}
        print(json.dumps({"label": measured.label, "tokens": measured.tokens,
                          "tokens_per_second": measured.tokens_per_second, "rails": rails,
                          "csv": measured.csv_path, "png": measured.png_path,
                          "estimated_joules_per_token": estimated.joules_per_token if estimated else None}))
    return 0


def cmd_sim_board(args) -> int:
    from golden.config import ModelConfig
    from golden.image import DeviceLayout
    from hw.boards import get_board
    from hw.top import SIM_DIVISOR, DeviceCore
    from sim.board import serve

    layout = DeviceLayout(ModelConfig.load(args.model), get_board(args.board).lanes)
    return serve(DeviceCore(layout, SIM_DIVISOR), SIM_DIVISOR, name=f"mmfree_{args.board.replace('-', '_')}",
                 port=args.tcp_port)


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
    from .device import DeviceError
    from .power.meter import MeterError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("mmfree: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, DeviceError, MeterError) as exc:  # every expected failure
        if args.verbose:
            raise
        print(f"mmfree: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
