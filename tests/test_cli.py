"""``mmfree generate`` and ``mmfree eval``: results against direct use of the models, and every
expected failure as one line on stderr with a nonzero exit and no traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest

from golden.bitexact import BitExactModel
from golden.float_model import FloatModel
from host.cli import main
from synthetic import small_config, write_random_checkpoint

BYTE_CONFIG = small_config(vocab_size=256, hidden_size=32, num_hidden_layers=2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    write_random_checkpoint(path, BYTE_CONFIG, seed=11)
    return path


def run_json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_generate_float_is_greedy_over_the_float_model(capsys, model_dir):
    out = run_json(capsys, ["generate", "--backend", "float", "--model", str(model_dir),
                            "--prompt", "def f(x):", "--max-tokens", "12"])
    model = FloatModel.from_pretrained(model_dir)
    state, want = model.init_state(), []
    tokens = list(b"def f(x):")
    for token in tokens:
        logits, state = model.step(token, state)
    for _ in range(12):
        want.append(int(np.argmax(logits)))
        logits, state = model.step(want[-1], state)
    assert out["tokens"] == want
    assert out["prompt_tokens"] == tokens


def test_generate_bitexact_follows_the_integer_argmax(capsys, model_dir):
    out = run_json(capsys, ["generate", "--backend", "bitexact", "--model", str(model_dir),
                            "--prompt", "import", "--max-tokens", "8"])
    model = BitExactModel.from_pretrained(model_dir)
    seq = list(b"import") + out["tokens"]
    _, acc, _ = model.forward(np.array(seq[:-1]))
    # every generated token is the argmax of the accumulators at the step before it
    assert out["tokens"] == [int(np.argmax(a)) for a in acc[len(b"import") - 1:]]


def test_generate_streams_text(capsys, model_dir):
    assert main(["generate", "--backend", "float", "--model", str(model_dir), "--prompt", "ab",
                 "--max-tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith("ab")


def test_eval_matches_windowed_bits_of_the_float_model(capsys, model_dir, tmp_path):
    text = bytes(np.random.default_rng(0).integers(32, 127, size=300).astype(np.uint8))
    path = tmp_path / "t.txt"
    path.write_bytes(text)
    out = run_json(capsys, ["eval", "--backend", "float", "--model", str(model_dir), "--text", str(path),
                            "--context", "100"])
    model = FloatModel.from_pretrained(model_dir)
    per_window = [model.bits_per_token(np.frombuffer(text[i:i + 100], np.uint8).astype(np.int64))
                  for i in range(0, 300, 100)]
    assert out["bits_per_token"] == pytest.approx(np.mean(per_window), rel=1e-9)
    assert out["predicted_tokens"] == 3 * 99


@pytest.mark.parametrize("argv, message", [
    (["generate", "--model", "{missing}", "--prompt", "x"], "does not exist"),
    (["generate", "--model", "{model}", "--prompt", ""], "prompt"),
    (["generate", "--model", "{model}", "--prompt", "x", "--max-tokens", "-1"], "max-tokens"),
    (["eval", "--model", "{model}", "--text", "{missing}"], "cannot read"),
    (["eval", "--model", "{model}", "--text", "{short}"], "window"),
    (["generate", "--model", "{corrupt}", "--prompt", "x"], "model.safetensors"),
])
def test_expected_failures_are_one_line(capsys, model_dir, tmp_path, argv, message):
    corrupt = tmp_path / "corrupt"
    write_random_checkpoint(corrupt, BYTE_CONFIG, seed=1)
    data = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(data[: len(data) // 2])
    short = tmp_path / "short.txt"
    short.write_bytes(b"abc")
    subs = dict(model=model_dir, missing=tmp_path / "nope", corrupt=corrupt, short=short)
    argv = [a.format(**subs) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmfree: error:") and "\n" not in err and "Traceback" not in err
    assert message in err


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "host.cli", "generate", "--model", str(tmp_path / "none"),
                           "--prompt", "x"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("mmfree: error:")
