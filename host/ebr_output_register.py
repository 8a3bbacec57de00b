"""ECP5 block RAM output registers: a netlist pass between Yosys and nextpnr.

An ECP5 block RAM (DP16KD) read without its output register has a clock-to-output of 5.83 ns
(speed grade 6, prjtrellis timing database): most of a cycle at 150 MHz, and more than half of
one at 100 MHz, before any routing. With the RAM's own output register (``REGMODE = OUTREG``)
the data leave 0.95 ns after the clock, one cycle later. Yosys 0.70 never selects that mode
(its memory library maps every read port with ``REGMODE = NOREG``), so the gateware puts a
plain register on each block RAM output it needs fast (``hw.engine._banked_read``, the MLGRU
state), and this pass moves such a register into the RAM:

    DP16KD.DO[k] --(its only sink)--> TRELLIS_FF.DI      becomes      DP16KD (OUTREG).DO[k] = Q

for every used output bit of a read port, when all of them feed flip-flops that are the same
register in all but data: clocked by the port's clock on the rising edge, no set/reset (a
``reset_less`` signal), initial value 0, one common clock enable (or none). The enable becomes
the port's output clock enable ``OCE``. Lattice TN1264 (ECP5 Memory Usage Guide) describes the
output register: it loads the read latch on the clock edge when ``OCE`` is high, which is what
the flip-flops did, so the netlist's behaviour is unchanged cycle for cycle. Ports whose
outputs go anywhere else (logic, a port of the design, a register with a reset) are left alone.
nextpnr times ``OUTREG`` from its own table (nextpnr pull request 423).

In pseudo-dual-port mode (36-bit words, ``DATA_WIDTH_A = 36``) both halves of the output
(DOA and DOB) belong to the read port B; both REGMODEs are set and both OCEs driven.

    python -m host.ebr_output_register NETLIST.json     (rewrites the file; prints a summary)
"""

import argparse
import json
import sys
from pathlib import Path

__all__ = ["absorb_output_registers", "absorb_file"]

_DATA_OUT = {"A": [f"DOA{k}" for k in range(18)], "B": [f"DOB{k}" for k in range(18)]}


def _param(cell, name, default=""):
    return str(cell["parameters"].get(name, default)).strip()


def _int_param(cell, name):
    text = _param(cell, name, "0")
    return int(text, 2) if set(text) <= {"0", "1"} and len(text) > 2 else int(text)


def _bit(cell, port):
    """The single bit on a one-bit port, or None when unconnected."""
    bits = cell["connections"].get(port)
    return bits[0] if bits else None


def _sinks(module):
    """net bit -> [(cell name, port)] of every input it drives, plus ("<port>", name) for a module
    output port."""
    sinks = {}
    for name, cell in module["cells"].items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if dirs.get(port, "input") == "output":
                continue
            for b in bits:
                if isinstance(b, int):
                    sinks.setdefault(b, []).append((name, port))
    for pname, port in module.get("ports", {}).items():
        if port["direction"] != "input":
            for b in port["bits"]:
                if isinstance(b, int):
                    sinks.setdefault(b, []).append(("<port>", pname))
    return sinks


def _plain_register(ff, clock):
    """The clock enable of a flip-flop that can be a RAM's output register ("1": always
    enabled), or None if it cannot: wrong clock or edge, a set/reset, a non-zero initial value,
    the preload input in use."""
    if _bit(ff, "CLK") != clock or _param(ff, "CLKMUX", "CLK") != "CLK":
        return None
    if _bit(ff, "LSR") not in (None, "0") or _param(ff, "LSRMUX", "LSR") == "INV":
        return None
    if _param(ff, "REGSET", "RESET") != "RESET" or _param(ff, "LSRMODE", "LSR") != "LSR":
        return None
    if _bit(ff, "M") not in (None, "x", "0"):
        return None
    cemux = _param(ff, "CEMUX", "1")
    if cemux == "1":
        return "1"
    if cemux == "CE":
        return _bit(ff, "CE")
    return None


def _groups(ram):
    """[(read port letter(s), output pins, clock)] of a DP16KD: one port per side in true dual
    port mode, both sides' pins for port B in pseudo dual port mode."""
    if _int_param(ram, "DATA_WIDTH_A") == 36:
        if _bit(ram, "CLKA") != _bit(ram, "CLKB"):
            return []
        return [("AB", _DATA_OUT["A"] + _DATA_OUT["B"], _bit(ram, "CLKB"))]
    return [(side, _DATA_OUT[side], _bit(ram, f"CLK{side}")) for side in "AB"]


def absorb_output_registers(netlist: dict) -> dict:
    """Rewrite ``netlist`` (a Yosys JSON netlist, as loaded) in place. Returns
    ``{"rams": block RAMs changed, "registers": flip-flops absorbed, "ports_left": read ports with
    used outputs that could not take their register}``."""
    stats = {"rams": 0, "registers": 0, "ports_left": 0}
    for module in netlist["modules"].values():
        cells = module.get("cells", {})
        sinks = _sinks(module)
        remove = set()
        for ram_name, ram in cells.items():
            if ram["type"] != "DP16KD":
                continue
            changed = False
            for sides, pins, clock in _groups(ram):
                if any(_param(ram, f"REGMODE_{s}", "NOREG") != "NOREG" for s in sides):
                    continue
                if any(_param(ram, f"CLK{s}MUX", f"CLK{s}") != f"CLK{s}" for s in sides):
                    continue
                used = [(p, ram["connections"][p][0]) for p in pins
                        if ram["connections"].get(p) and isinstance(ram["connections"][p][0], int)
                        and sinks.get(ram["connections"][p][0])]
                if not used:
                    continue
                plan, enables = [], set()
                for pin, bit in used:
                    targets = sinks[bit]
                    if len(targets) != 1:
                        break
                    ff_name, ff_port = targets[0]
                    ff = cells.get(ff_name)
                    if ff is None or ff["type"] != "TRELLIS_FF" or ff_port != "DI":
                        break
                    enable = _plain_register(ff, clock)
                    if enable is None:
                        break
                    enables.add(enable)
                    plan.append((pin, ff_name))
                if len(plan) != len(used) or len(enables) != 1:
                    stats["ports_left"] += 1
                    continue
                enable = enables.pop()
                for s in sides:
                    ram["parameters"][f"REGMODE_{s}"] = "OUTREG"
                    ram["connections"][f"OCE{s}"] = [enable]
                for pin, ff_name in plan:
                    ram["connections"][pin] = list(cells[ff_name]["connections"]["Q"])
                    remove.add(ff_name)
                stats["registers"] += len(plan)
                changed = True
            stats["rams"] += changed
        for name in remove:
            del cells[name]
    return stats


def absorb_file(path) -> dict:
    """``absorb_output_registers`` on a netlist file, rewritten in place."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    stats = absorb_output_registers(netlist)
    path.write_text(json.dumps(netlist))
    return stats


def summary(stats) -> str:
    return (f"block RAM output registers: {stats['registers']} flip-flops moved into "
            f"{stats['rams']} block RAMs (REGMODE OUTREG); {stats['ports_left']} read ports "
            f"with other loads left as they were")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m host.ebr_output_register",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("netlist", help="Yosys JSON netlist (synth_ecp5), rewritten in place")
    args = parser.parse_args(argv)
    try:
        stats = absorb_file(args.netlist)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {args.netlist}: {exc}", file=sys.stderr)
        return 1
    print(summary(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
