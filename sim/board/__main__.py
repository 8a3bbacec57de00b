"""``python -m sim.board --verilog top.v --name top --divisor N``: serve a Verilog core top.

For trying a core top before ``mmfree sim-board`` can build it from a model; prints the URL.
"""

import argparse
import sys
from pathlib import Path

from sim.board import SimBoardError, serve


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.board", description=__doc__.splitlines()[0])
    p.add_argument("--verilog", type=Path, required=True, help="Verilog file with the core top")
    p.add_argument("--name", required=True, help="the core top's module name")
    p.add_argument("--divisor", type=int, required=True, help="clock cycles per UART bit")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free one)")
    p.add_argument("--reset-on-connect", action="store_true", help="reset the device for each client")
    p.add_argument("--stats-every", type=float, default=0.0, help="report speed every N seconds")
    args = p.parse_args(argv)
    try:
        return serve(args.verilog.read_text(), args.divisor, name=args.name, port=args.port,
                     reset_on_connect=args.reset_on_connect, stats_every=args.stats_every)
    except (SimBoardError, OSError) as e:
        print(f"sim-board: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
