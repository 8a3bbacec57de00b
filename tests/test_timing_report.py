"""host.timing: nextpnr's report read as late registers (a hand-made report, known answers)."""

import json

import pytest

from host.timing import critical_path, late_endpoints, load_report, main, register_of


def _report():
    step = lambda kind, delay, cell: {"type": kind, "delay": delay,  # noqa: E731
                                      "from": {"cell": cell, "port": "Q", "loc": [1, 1]},
                                      "to": {"cell": cell, "port": "DI", "loc": [9, 9]}}
    return {
        "fmax": {"$glbnet$clk": {"achieved": 80.0, "constraint": 100.0}},
        "critical_paths": [
            {"from": "posedge $glbnet$clk", "to": "posedge $glbnet$clk",
             "path": [step("clk-to-q", 0.5, "a_TRELLIS_FF_Q"), step("routing", 11.5, "b_TRELLIS_FF_Q_3")]},
            {"from": "posedge $glbnet$clk", "to": "posedge $glbnet$clk",
             "path": [step("clk-to-q", 0.5, "c_TRELLIS_FF_Q"), step("routing", 2.0, "d_TRELLIS_FF_Q")]},
        ],
        "detailed_net_timings": [
            {"net": "n1", "endpoints": [
                {"cell": "engine.ring.stored_TRELLIS_FF_Q_3", "delay": [9.0, 12.5]},
                {"cell": "engine.ring.stored_TRELLIS_FF_Q_4", "delay": [9.0, 10.5]},
                {"cell": "engine.tmv.acc[7]_TRELLIS_FF_Q", "delay": [3.0, 11.0]},
                {"cell": "engine.post.x_TRELLIS_FF_Q", "delay": [3.0, 9.9]}]},
            {"net": "n2", "endpoints": [{"cell": "engine.pg_DP16KD", "delay": 10.2}]},
        ],
    }


def test_register_names_lose_cell_suffixes_and_bit_indices():
    assert register_of("engine.ring.stored_TRELLIS_FF_Q_12") == "engine.ring.stored"
    assert register_of("engine.tmv.acc[7]_TRELLIS_FF_Q") == "engine.tmv.acc"
    assert register_of("engine.pg_DP16KD") == "engine.pg"
    assert register_of("link.state") == "link.state"


def test_late_endpoints_grouped_by_register_worst_first():
    late = late_endpoints(_report(), over_ns=10.0)
    assert late == [("engine.ring.stored", 12.5, 2), ("engine.tmv.acc", 11.0, 1), ("engine.pg", 10.2, 1)]
    assert late_endpoints(_report(), over_ns=12.5) == []


def test_critical_path_is_the_slowest():
    assert [s["to"]["cell"] for s in critical_path(_report())] == ["a_TRELLIS_FF_Q", "b_TRELLIS_FF_Q_3"]


def test_cli_default_threshold_is_the_clock_period(tmp_path, capsys):
    (tmp_path / "report.json").write_text(json.dumps(_report()))
    assert main([str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["over_ns"] == pytest.approx(10.0) and out["late_endpoints"] == 4
    assert out["late_registers"][0] == {"register": "engine.ring.stored", "arrival_ns": 12.5, "endpoints": 2}


def test_missing_or_plain_report_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert "no nextpnr report" in capsys.readouterr().err
    plain = _report()
    del plain["detailed_net_timings"]
    (tmp_path / "report.json").write_text(json.dumps(plain))
    assert main([str(tmp_path)]) == 1
    assert "--detailed-timing-report" in capsys.readouterr().err
    (tmp_path / "report.json").write_text("{\"critical")
    with pytest.raises(ValueError, match="not a complete JSON"):
        load_report(tmp_path)
