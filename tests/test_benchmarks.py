import importlib.util
import os
import warnings

import pytest
from conftest import SHARED

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "benchmarks",
                                                                     f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "data", "liking")),
                    reason="../shared/data/liking not available")
def test_real_raters_benchmark_runs(capsys):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        # a small head: the same code paths, 99 fine-tunings of the paper's took 26 s
        assert _load("real_raters").main(["--folds", "2", "--repeats", "1",
                                          "--iterations", "2", "--hidden-sizes", "32"]) == 0
    out = capsys.readouterr().out
    # the liking set's rater who rated all 55 images 500 is left out, not trained on
    assert "left out 1 rater(s) whose ratings are all equal: '6yf78' (all 500)" in out
    assert not [w for w in record if "same score" in str(w.message)
                or "all scored" in str(w.message)]
    for row in ("prior", "consensus + ridge", "personalized"):
        assert f"  {row} " in out


def test_speed_benchmark_prints_its_table(capsys):
    # Smallest settings: checks that the script runs and reports every row, not speed.
    speed = _load("speed")
    # A head of 64-32-16-1 for the paper's 1280-1024-512-1 (the naive reference loop
    # keeps its own): 20 s instead of 71 on an AVX2 CPU, the same code paths.
    speed.DIM, speed.HIDDEN = 64, (32, 16)
    speed.SIZES = list(zip((speed.DIM, *speed.HIDDEN), (*speed.HIDDEN, 1)))
    assert speed.main(["--iterations", "2", "--rounds", "1", "--repeats", "1",
                       "--images", "4"]) == 0
    out = capsys.readouterr().out
    for row in ("BLG meta-training", "autograd path", "achieved GFLOP/s", "embedding",
                "mixed_precision=True", "personalize 100 embeddings", "predict 10,000",
                "Adam kernels alone", "array_batches=False", "SROCC between the two",
                "the previous default", "kernel launches", "time around the network",
                "bound on ratio", "bfloat16 embeddings: mean |diff| / |float32|",
                "task vectors: personalize 100 embeddings", "same, 10 embeddings",
                "the first layer recombined at each step",
                "by round, naive", "by round, fast", "one task at a time",
                "best lone float32 product", "fastest lone float32 product",
                "peak memory"):
        assert row in out, row


@pytest.mark.parametrize("sweep", [False, True])
def test_finetune_defaults_benchmark_prints_its_table(capsys, sweep):
    assert _load("finetune_defaults").main([
        "--n-images", "40", "--n-raters", "10", "--images-per-rater", "30",
        "--image-size", "32", "--n-iterations", "2", "--n-repeats", "1",
        "--n-support", "4", "12", "--rounds", "1"] + ["--learning-rates"] * sweep) == 0
    out = capsys.readouterr().out
    settings = (("one batch, lr 1e-3", "one batch, lr 1e-4", "batch 10, lr 1e-4")
                if sweep else ("one batch, lr scaled",))
    for setting in ("prior only", "batch 10, lr 3e-5", "default", "one batch, lr 3e-5",
                    *settings):
        for k in (4, 12):
            assert any(line.startswith(setting) and f" {k} " in line
                       for line in out.splitlines()), (setting, k)


@pytest.mark.parametrize("quick", [False, True])
def test_whole_network_benchmark_prints_its_table(capsys, quick):
    # Tiny sizes on the CPU: checks that the script runs and reports every row.
    assert _load("whole_network").main([
        "--device", "cpu", "--backbone", "tiny_cnn", "--iterations", "1", "--images", "12",
        "--repeats", "1", "--tasks", "1", "--steps", "1", "--support", "3", "--query", "2",
        "--user-images", "6"] + (["--quick", "--skip-head-only"] if quick else [])) == 0
    out = capsys.readouterr().out
    rows = ["decode one outer iteration's 5 images", "one Adam step on 3 images",
            "its steps' arithmetic alone", "decoded images kept", "personalize 6 images",
            "predict 12 images", "peak memory"]
    full = ["outer iteration, s/iteration (float32)", "(bfloat16)", "head-only: embedding",
            "head-only: personalize 100 embeddings"]
    for row in rows + ([] if quick else full):
        assert row in out, row
    if quick:
        assert "bfloat16" not in out and "head-only" not in out
