"""host.congestion: a placed netlist read as wire length by register (hand-made netlist, known answers)."""

import json

import pytest

from host.congestion import hot_demand, load_placement, main, net_boxes, register_of_net, wire_length_by_register


def _cell(x, y, **ports):
    return {"type": "TRELLIS_FF", "attributes": {"NEXTPNR_BEL": f"X{x}/Y{y}/SLICEA"}, "connections": ports}


def _netlist():
    # net 2: a register's bit from (0, 0) to (4, 3): HPWL 7; net 3: its other bit, (0, 0) to (2, 0): 2;
    # net 4: another register, one tile (no wire); net 5: three cells, box (1, 1)-(3, 4): 5
    cells = {
        "a": _cell(0, 0, Q=[2, 3]),
        "b": _cell(4, 3, D=[2]),
        "c": _cell(2, 0, D=[3]),
        "d": _cell(1, 1, Q=[4, 5]),
        "e": _cell(1, 1, D=[4]),
        "f": _cell(3, 4, D=[5]),
        "g": _cell(2, 2, D=[5]),
        "unplaced": {"type": "TRELLIS_FF", "attributes": {}, "connections": {"D": [5]}},
    }
    netnames = {
        "core.bus_wr12_data_replica0": {"bits": [2, 3]},
        "$auto$alias": {"bits": [2]},           # a hidden alias: the public name wins
        "core.w_addr_b3_c17": {"bits": [4, 5]},
    }
    return {"modules": {"top": {"attributes": {"top": "00000001"}, "cells": cells, "netnames": netnames}}}


def test_register_names_lose_numbers_bit_indices_and_cell_suffixes():
    assert register_of_net("core.w_addr_b3_c17_replica2[4]") == "core.w_addr_b#_c#_replica#"
    assert register_of_net("core.acc_TRELLIS_FF_Q_3") == "core.acc"


def test_wire_length_per_register_is_the_sum_of_the_nets_half_perimeters():
    boxes = net_boxes(_netlist()["modules"]["top"])
    assert sorted(boxes) == [("core.bus_wr12_data_replica0", 0, 2, 0, 0), ("core.bus_wr12_data_replica0", 0, 4, 0, 3),
                             ("core.w_addr_b3_c17", 1, 3, 1, 4)]
    assert wire_length_by_register(boxes) == {"core.bus_wr#_data_replica#": 9, "core.w_addr_b#_c#": 5}


def test_hot_tiles_demand_is_each_nets_density_over_its_box():
    boxes = net_boxes(_netlist()["modules"]["top"])
    long, short, other = 7 / 20, 2 / 3, 5 / 12  # HPWL over the box's tiles, per net
    demand, threshold, share = hot_demand(boxes, hot_fraction=0.04)  # 1 of the 25 tiles
    assert demand.shape == (5, 5)
    assert demand[0, 0] == demand[2, 0] == pytest.approx(long + short)  # the hottest, 3 tiles
    assert demand[1, 1] == demand[3, 3] == pytest.approx(long + other)
    assert demand[3, 4] == pytest.approx(other) and demand[4, 0] == pytest.approx(long)
    assert threshold == pytest.approx(long + short)
    assert share == pytest.approx({"core.bus_wr#_data_replica#": 3 * (long + short)})
    # the hottest 5 tiles: the 9 tiles both boxes cover join the 3 at the threshold
    _, threshold, share = hot_demand(boxes, hot_fraction=0.2)
    assert threshold == pytest.approx(long + other)
    assert share == pytest.approx({"core.bus_wr#_data_replica#": 12 * long + 3 * short, "core.w_addr_b#_c#": 9 * other})
    with pytest.raises(ValueError, match="hot_fraction"):
        hot_demand(boxes, 0)


def test_errors_name_the_file_and_what_is_missing(tmp_path, capsys):
    with pytest.raises(ValueError, match="no such file"):
        load_placement(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        load_placement(tmp_path / "bad.json")
    unplaced = _netlist()
    for cell in unplaced["modules"]["top"]["cells"].values():
        cell["attributes"] = {}
    (tmp_path / "unplaced.json").write_text(json.dumps(unplaced))
    assert main([str(tmp_path / "unplaced.json")]) == 2
    assert "no cell is placed" in capsys.readouterr().err


def test_cli_json(tmp_path, capsys):
    (tmp_path / "placed.json").write_text(json.dumps(_netlist()))
    assert main([str(tmp_path / "placed.json"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["wire_length"] == 14
    assert out["by_register"] == {"core.bus_wr#_data_replica#": 9, "core.w_addr_b#_c#": 5}
