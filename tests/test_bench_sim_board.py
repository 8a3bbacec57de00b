"""benchmarks/sim_board.py: the UART divisor it runs at and the figures it derives (no Verilator).

The expected values come from the boards' published figures (the ULX3S core at 75 MHz and the
iCEBreaker's at 24 MHz, both USB UARTs at 3 Mbaud) and from the frame format in docs/protocol.md,
not from the code under test.
"""

import dataclasses

import pytest

import hw.boards
from benchmarks import sim_board
from benchmarks.sim_board import board_divisor, check_divisor, figures, main, render, token_reply_bytes


def test_the_boards_own_divisor():
    # 75 MHz / 3 Mbaud = 25 and 24 MHz / 3 Mbaud = 8 clock cycles per bit
    assert board_divisor("ulx3s-85f") == 25
    assert board_divisor("icebreaker") == 8
    for board in hw.boards.BOARDS.values():
        assert board_divisor(board) == round(board.clock_mhz * 1e6 / board.baud)


def test_divisors_the_uart_cannot_take_are_refused():
    assert check_divisor(4) == 4
    for bad in (3, 0, -33, 33.0, True, "33"):
        with pytest.raises(ValueError, match=">= 4"):
            check_divisor(bad)


def test_command_line_refuses_a_bad_divisor_before_building(monkeypatch, capsys):
    def no_measure(*args, **kwargs):
        raise AssertionError("measure() must not run for a refused divisor")

    monkeypatch.setattr(sim_board, "measure", no_measure)
    with pytest.raises(SystemExit) as exc:
        main(["--divisor", "3", "--no-write"])
    assert exc.value.code == 2
    assert "must be an integer >= 4, got 3" in capsys.readouterr().err
    # a board whose own clock gives fewer than 4 cycles per bit: 6 MHz / 3 Mbaud = 2
    slow = dataclasses.replace(hw.boards.BOARDS["icebreaker"], name="slow", clock_mhz=6.0)
    monkeypatch.setitem(hw.boards.BOARDS, "slow", slow)
    with pytest.raises(SystemExit) as exc:
        main(["--board", "slow", "--no-write"])
    assert exc.value.code == 2
    assert "got 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--tokens", "1", "--no-write"])
    assert "--tokens must be at least 2" in capsys.readouterr().err


def test_the_board_divisor_is_what_measure_gets(monkeypatch, capsys):
    seen = {}

    def fake_measure(model_dir, board, tokens, runs, divisor, log=print):
        seen.update(board=board, divisor=divisor)
        raise SystemExit(0)

    monkeypatch.setattr(sim_board, "measure", fake_measure)
    with pytest.raises(SystemExit):
        main(["--no-write"])
    assert seen == {"board": "ulx3s-85f", "divisor": 25}
    assert "UART divisor: 25" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--board", "icebreaker", "--divisor", "12", "--no-write"])
    assert seen == {"board": "icebreaker", "divisor": 12}


def test_token_reply_frame_length():
    # cmd, seq, status, position u16, token u16, CRC-16, one COBS code byte, the 0x00 delimiter
    assert token_reply_bytes() == 3 + 4 + 2 + 1 + 1


class _Layout:
    def describe(self):
        return {"lanes": 195}


def _result(upload_cycles, runs):
    return {"layout": _Layout(), "board": hw.boards.BOARDS["ulx3s-85f"], "divisor": 25,
            "start_s": 1.0, "payload": 1000, "upload_cycles": upload_cycles, "upload_wall": 2.0,
            "upload_cpu": 1.0, "verify_cycles": 1000, "runs": runs}


def _run(fixed, per_token, n=16, busy=13_000):
    return {"cycles": fixed + n * per_token, "one_cycles": fixed + per_token, "tokens": n,
            "busy": n * busy, "wall": 1.0, "cpu": 0.5}


def test_figures_from_counters():
    # 1000 bytes at 10 bits of 25 cycles each fill 250,000 cycles of line exactly
    f = figures(_result(250_000, [_run(50_000, 14_000)]))
    assert f["efficiency"] == pytest.approx(1.0)
    assert figures(_result(312_500, [_run(50_000, 14_000)]))["efficiency"] == pytest.approx(0.8)
    assert f["upload_s_at_clock"] == pytest.approx(250_000 / 75e6)
    # the fixed cost of the command cancels; 14,000 cycles per token at 75 MHz
    assert f["steady_per_token"] == pytest.approx(14_000)
    assert f["steady_tokens_per_s"] == pytest.approx(75e6 / 14_000)
    assert f["busy_tokens_per_s"] == pytest.approx(75e6 / 13_000)
    assert f["whole_per_token"] == pytest.approx((50_000 + 16 * 14_000) / 16)
    # 11 wire bytes of 10 bits at 25 cycles per bit
    assert f["reply_cycles"] == 2750
    assert f["link_tokens_per_s"] == pytest.approx(75e6 / 2750)
    # medians over runs
    f3 = figures(_result(250_000, [_run(50_000, 14_000), _run(60_000, 15_000), _run(40_000, 90_000)]))
    assert f3["steady_per_token"] == pytest.approx(15_000)


def test_section_names_the_divisor():
    text = render(_result(250_000, [_run(50_000, 14_000)]), "python -m benchmarks.sim_board")
    assert text.startswith(sim_board.TITLE + "\n")
    assert "UART at 25 clocks per bit (the ulx3s-85f's own: 75 MHz / 3,000,000 baud" in text
    assert "**100.0%**" in text
    other = dict(_result(250_000, [_run(50_000, 14_000)]), divisor=4)
    assert "UART at 4 clocks per bit (not the ulx3s-85f's 25" in render(other, "cmd")
