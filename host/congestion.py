"""Where a placement needs wires: the placed netlist's wire length by register, and its hot spots.

``python -m host.congestion PLACED.json [--top N] [--hot FRACTION] [--json]`` reads a netlist that
nextpnr wrote after placing (``nextpnr-ecp5 ... --no-route --write PLACED.json``, or ``--write``
after routing) and estimates the routing each net needs from its cells' tiles:

- a net's half-perimeter wire length (HPWL: the width plus the height of the box around its
  cells, in tiles), summed over the nets of each register (its name less bit indices and
  numbers, so ``w_addr_b3_c17_replica2[4]`` counts under ``w_addr_b#_c#_replica#``);
- the RUDY estimate of each tile's demand (rectangular uniform wire density: a net's HPWL spread
  evenly over its box), and, for the hottest ``--hot`` fraction of the tiles (default 2%), the
  demand there by register.

An estimate from the placement alone, with no routing: it ranks what fills the die's wires, which
is what a router that does not converge is short of. nextpnr's own router only reports the
number of overused wires, not where they are.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

import numpy as np

__all__ = ["load_placement", "net_boxes", "register_of_net", "wire_length_by_register", "hot_demand", "main"]

_BEL = re.compile(r"X(\d+)/Y(\d+)/")
_CELL_SUFFIX = re.compile(r"_TRELLIS\w*$|_SB_\w*$")


def register_of_net(name: str) -> str:
    """The register a net belongs to: bit indices, cell suffixes and numbers taken out."""
    name = _CELL_SUFFIX.sub("", name)
    name = re.sub(r"\[\d+\]", "", name)
    return re.sub(r"\d+", "#", name)


def load_placement(path: Path) -> dict:
    """The top module of a placed netlist; ValueError if the file is not one."""
    try:
        netlist = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (nextpnr writes it with --write)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    modules = netlist.get("modules", {}) if isinstance(netlist, dict) else {}
    top = [m for m in modules.values() if m.get("attributes", {}).get("top")] or list(modules.values())
    if len(top) != 1:
        raise ValueError(f"{path}: expected one top module, found {len(top)}")
    if not any("NEXTPNR_BEL" in c.get("attributes", {}) for c in top[0].get("cells", {}).values()):
        raise ValueError(f"{path}: no cell is placed (write the netlist after nextpnr's placement)")
    return top[0]


def net_boxes(module: dict, *, max_fanout: int = 1000) -> list[tuple[str, int, int, int, int]]:
    """``(net name, x0, x1, y0, y1)`` per net with placed cells in more than one tile. Nets with
    more than ``max_fanout`` cells (clocks, resets on the global network) are left out."""
    tiles = collections.defaultdict(set)
    for cell in module["cells"].values():
        where = _BEL.match(cell.get("attributes", {}).get("NEXTPNR_BEL", ""))
        if where is None:
            continue
        xy = int(where.group(1)), int(where.group(2))
        for bits in cell["connections"].values():
            for bit in bits:
                if isinstance(bit, int):
                    tiles[bit].add(xy)
    # a bit's name: the shortest public one (Yosys lists a net under each of its aliases)
    names = {}
    for name, info in module["netnames"].items():
        key = (name.startswith("$") or "$" in name.rsplit(".", 1)[-1], len(name), name)
        for bit in info["bits"]:
            if isinstance(bit, int) and (bit not in names or key < names[bit]):
                names[bit] = key
    boxes = []
    for bit, where in tiles.items():
        if len(where) < 2 or len(where) > max_fanout:
            continue
        xs, ys = [x for x, _ in where], [y for _, y in where]
        boxes.append((names[bit][2] if bit in names else f"${bit}", min(xs), max(xs), min(ys), max(ys)))
    return boxes


def wire_length_by_register(boxes) -> collections.Counter:
    """HPWL in tiles summed per register."""
    total = collections.Counter()
    for name, x0, x1, y0, y1 in boxes:
        total[register_of_net(name)] += (x1 - x0) + (y1 - y0)
    return total


def hot_demand(boxes, hot_fraction: float = 0.02):
    """``(demand map, threshold, demand in the hot tiles by register)``: the RUDY map (a net's
    HPWL over its box's tiles), the demand at or above which a tile is among the hottest
    ``hot_fraction``, and each register's share of the demand in those tiles."""
    if not 0 < hot_fraction <= 1:
        raise ValueError(f"hot_fraction must be in (0, 1], got {hot_fraction!r}")
    width = max((b[2] for b in boxes), default=0) + 1
    height = max((b[4] for b in boxes), default=0) + 1
    demand = np.zeros((width, height))
    for _, x0, x1, y0, y1 in boxes:
        demand[x0:x1 + 1, y0:y1 + 1] += ((x1 - x0) + (y1 - y0)) / ((x1 - x0 + 1) * (y1 - y0 + 1))
    ranked = np.sort(demand, axis=None)[::-1]
    threshold = ranked[max(0, int(len(ranked) * hot_fraction) - 1)] if len(ranked) else 0.0
    hot = demand >= threshold
    share = collections.Counter()
    for name, x0, x1, y0, y1 in boxes:
        tiles = int(hot[x0:x1 + 1, y0:y1 + 1].sum())
        if tiles:
            share[register_of_net(name)] += tiles * ((x1 - x0) + (y1 - y0)) / ((x1 - x0 + 1) * (y1 - y0 + 1))
    return demand, float(threshold), share


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m host.congestion", description=__doc__.splitlines()[0])
    p.add_argument("placed", type=Path, help="netlist nextpnr wrote after placement (--write)")
    p.add_argument("--top", type=int, default=25, help="registers to list (default 25)")
    p.add_argument("--hot", type=float, default=0.02, help="fraction of the tiles counted as hot (default 0.02)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    args = p.parse_args(argv)
    try:
        boxes = net_boxes(load_placement(args.placed))
        length = wire_length_by_register(boxes)
        demand, threshold, share = hot_demand(boxes, args.hot)
    except ValueError as e:
        print(f"host.congestion: error: {e}", file=sys.stderr)
        return 2
    total = sum(length.values())
    hottest = np.unravel_index(np.argmax(demand), demand.shape)
    if args.json:
        print(json.dumps({"wire_length": total, "by_register": dict(length.most_common(args.top)),
                          "hot_threshold": threshold, "hottest_tile": [int(v) for v in hottest],
                          "hot_by_register": {k: round(v, 1) for k, v in share.most_common(args.top)}}))
        return 0
    print(f"wire length (HPWL, tiles): {total} over {len(boxes)} nets")
    for name, value in length.most_common(args.top):
        print(f"  {value:8d}  {100 * value / total:5.1f}%  {name}")
    print(f"hottest tile X{hottest[0]}/Y{hottest[1]}: {demand[hottest]:.1f}; the hottest {100 * args.hot:g}% "
          f"of the tiles are at {threshold:.1f} or more, their demand by register:")
    hot_total = sum(share.values()) or 1.0
    for name, value in share.most_common(args.top):
        print(f"  {value:10.1f}  {100 * value / hot_total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
