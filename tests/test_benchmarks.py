import importlib.util
import os

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
    assert _load("real_raters").main(["--folds", "2", "--repeats", "1",
                                      "--iterations", "2"]) == 0
    out = capsys.readouterr().out
    for row in ("prior", "consensus + ridge", "personalized"):
        assert f"  {row} " in out


def test_speed_benchmark_prints_its_table(capsys):
    # Smallest settings: checks that the script runs and reports every row, not speed.
    assert _load("speed").main(["--iterations", "2", "--rounds", "1", "--repeats", "1",
                                "--images", "4"]) == 0
    out = capsys.readouterr().out
    for row in ("BLG meta-training", "autograd path", "achieved GFLOP/s", "embedding",
                "mixed_precision=True", "personalize 100 embeddings", "predict 10,000",
                "Adam kernels alone", "array_batches=False", "SROCC between the two",
                "by round, naive", "by round, fast",
                "peak memory"):
        assert row in out, row
