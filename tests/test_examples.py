"""The example programs run end to end (``--quick``, in a subprocess, into a temporary
``--out``), learn something, write what they say they write, and the language model's
``--resume`` continues a run exactly where it stopped."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tqdm")  # the examples' progress bars (requirements-dev.txt)

import oxmx.core as mx  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Without matplotlib the examples train and save but draw no pictures, and say so.
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def check_picture(path, stdout):
    if HAVE_MATPLOTLIB:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {path}" in stdout
    else:
        assert not path.exists() and "matplotlib is not installed" in stdout


def run(script, *args, expect_ok=True):
    cmd = [sys.executable, str(EXAMPLES / script), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if expect_ok:
        assert proc.returncode == 0, f"{script} {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def history(checkpoint):
    return np.array(mx.load(str(checkpoint))["history.train_loss"])


# --- train_lm ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory):
    """An uninterrupted quick run, and the same run stopped at step 10 and resumed."""
    root = tmp_path_factory.mktemp("lm")
    full = run("train_lm.py", "--quick", "--sample-chars", 40, "--out", root / "full")
    part = run("train_lm.py", "--quick", "--steps", 10, "--sample-chars", 5, "--out", root / "split")
    part_ckpt = root / "split" / "checkpoint.safetensors"
    first_half = history(part_ckpt)
    resumed = run("train_lm.py", "--resume", part_ckpt, "--sample-chars", 5, "--out", root / "split")
    return dict(root=root, full=full.stdout, part=part.stdout, resumed=resumed.stdout, first_half=first_half)


def test_lm_quick_run_learns_and_writes_its_files(lm_runs):
    out = lm_runs["root"] / "full"
    first, last = map(float, re.search(r"validation loss: first ([\d.]+) -> last ([\d.]+)", lm_runs["full"]).groups())
    assert last < first - 1.0, lm_runs["full"]
    for name in ("checkpoint.safetensors", "sample.txt"):
        assert (out / name).stat().st_size > 0
        assert f"wrote {out / name}" in lm_runs["full"]
    check_picture(out / "loss.png", lm_runs["full"])
    sample = (out / "sample.txt").read_text()
    assert sample.startswith("def ") and len(sample) == 4 + 40
    assert sample in lm_runs["full"]


def test_lm_checkpoint_holds_weights_optimizer_state_and_history(lm_runs):
    lm = load_example("train_lm")
    ckpt = lm.load_checkpoint(lm_runs["root"] / "full" / "checkpoint.safetensors")
    steps = len(ckpt["history"]["train"])
    assert steps == ckpt["history"]["val_step"][-1] > 0
    optimizer_state = dict(ckpt["optimizer"])
    assert optimizer_state["step"].item() == steps
    assert {name + ".m" for name, _ in ckpt["model"]} | {"step", "learning_rate"} <= set(optimizer_state)
    # The weights reproduce the last validation loss the run recorded.
    cfg = ckpt["config"]
    corpus = lm.Corpus(lm.load_text(cfg)[0], vocab=ckpt["vocab"])
    model = lm.CharTransformer(len(corpus.vocab), cfg["dims"], cfg["layers"], cfg["heads"])
    model.load_weights(ckpt["model"])
    assert lm.validation_loss(model, corpus, cfg) == pytest.approx(ckpt["history"]["val"][-1], rel=1e-4)


def test_lm_resume_continues_from_the_saved_step(lm_runs):
    assert "stopped in epoch 1 (--steps): step 10" in lm_runs["part"]
    assert len(lm_runs["first_half"]) == 10
    assert re.search(r"resumed from .*checkpoint\.safetensors at step 10 ", lm_runs["resumed"])
    full = history(lm_runs["root"] / "full" / "checkpoint.safetensors")
    split = history(lm_runs["root"] / "split" / "checkpoint.safetensors")
    assert len(split) == len(full) > 10
    # The first 10 steps are kept, and the resumed steps are the ones the uninterrupted
    # run took (same batches, same schedule, same optimizer moments).
    np.testing.assert_array_equal(split[:10], lm_runs["first_half"])
    np.testing.assert_allclose(split, full, rtol=1e-4)
    # Resuming a finished run trains nothing more.
    finished = lm_runs["root"] / "full" / "checkpoint.safetensors"
    again = run("train_lm.py", "--resume", finished, "--sample-chars", 5, "--out", lm_runs["root"] / "again")
    assert "nothing to train" in again.stdout and not (lm_runs["root"] / "again" / "checkpoint.safetensors").exists()


def test_lm_resume_refuses_settings_that_contradict_the_checkpoint(lm_runs):
    checkpoint = lm_runs["root"] / "full" / "checkpoint.safetensors"
    proc = run("train_lm.py", "--resume", checkpoint, "--dims", 64, expect_ok=False)
    assert proc.returncode != 0 and "--dims 64 contradicts the checkpoint's 32" in proc.stderr


def test_lm_trains_on_a_given_text_file(tmp_path):
    data = tmp_path / "text.txt"
    data.write_text("the quick brown fox jumps over the lazy dog.\n" * 300)
    out = tmp_path / "out"
    proc = run("train_lm.py", "--quick", "--data", data, "--prompt", "the ", "--sample-chars", 30, "--out", out)
    assert f"data: {data}: 8,000 characters, vocabulary of 29" in proc.stdout
    first, last = map(float, re.search(r"validation loss: first ([\d.]+) -> last ([\d.]+)", proc.stdout).groups())
    assert last < first - 1.0
    check_picture(out / "loss.png", proc.stdout)


def test_lm_rejects_bad_options(tmp_path):
    proc = run("train_lm.py", "--quick", "--epochs", 0, "--out", tmp_path, expect_ok=False)
    assert proc.returncode == 2 and "must be at least 1" in proc.stderr
    proc = run("train_lm.py", "--quick", "--dims", 30, "--heads", 4, "--out", tmp_path, expect_ok=False)
    assert proc.returncode != 0 and "multiple of --heads" in proc.stderr


# --- train_cnn -----------------------------------------------------------------------


def test_cnn_quick_run_learns_and_writes_its_files(tmp_path):
    proc = run("train_cnn.py", "--quick", "--out", tmp_path)
    pattern = r"test accuracy: ([\d.]+)% before training, ([\d.]+)% after the first epoch, ([\d.]+)% after the last"
    before, first, last = map(float, re.search(pattern, proc.stdout).groups())
    assert last > 35 and last > before + 20, proc.stdout  # chance is 10%
    assert (tmp_path / "cnn.safetensors").stat().st_size > 0 and f"wrote {tmp_path / 'cnn.safetensors'}" in proc.stdout
    for name in ("loss.png", "examples.png"):
        check_picture(tmp_path / name, proc.stdout)
    # The saved weights give the accuracy the run printed, on the same generated test set.
    cnn = load_example("train_cnn")
    model = cnn.CNN()
    model.load_weights(str(tmp_path / "cnn.safetensors"))
    test_x, test_y = cnn.make_dataset(300, seed=cnn.TEST_SEED)
    assert 100 * cnn.accuracy(model, test_x, test_y)[0] == pytest.approx(last, abs=0.05)


def test_cnn_digit_images():
    cnn = load_example("train_cnn")
    x, y = cnn.make_dataset(200, seed=3)
    assert x.shape == (200, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
    assert 0 <= x.min() and x.max() <= 1 and set(y.tolist()) == set(range(10))
    again = cnn.make_dataset(200, seed=3)
    np.testing.assert_array_equal(x, again[0])
    assert not np.array_equal(x, cnn.make_dataset(200, seed=4)[0])
    # Ink sits in the middle: the mean image is darker in the centre than at the border.
    mean = x[..., 0].mean(0)
    assert mean[10:18, 10:18].mean() > mean[:3].mean() + 0.1


# --- least_squares -------------------------------------------------------------------


def test_least_squares_example():
    proc = run("least_squares.py")
    assert "MISMATCH" not in proc.stdout and "All sections agree with NumPy" in proc.stdout
