import io

import numpy as np

from sklearn_piaa.cli import main, run_demo


def test_demo_runs_end_to_end_on_a_small_benchmark():
    out = io.StringIO()
    result = run_demo(n_images=80, n_raters=10, images_per_rater=40, image_size=32,
                      n_test_raters=3, n_support=(5, 20), n_repeats=1, backbone="tiny_cnn",
                      n_iterations=5, verbose=0, out=out)
    text = out.getvalue()
    assert "n_support" in text and "personalized" in text
    assert set(result.summary) == {5, 20}
    assert all(np.isfinite(s["personalized"].mean) for s in result.summary.values())


def test_cli_parses_and_runs(capsys):
    code = main(["demo", "--n-images", "60", "--n-raters", "8", "--images-per-rater", "30",
                 "--image-size", "32", "--n-test-raters", "2", "--n-repeats", "1",
                 "--backbone", "tiny_cnn", "--n-iterations", "3", "--quiet",
                 "--n-support", "5", "10"])
    assert code == 0
    out = capsys.readouterr().out
    assert "prior" in out and "\n        5   " in out and "\n       10   " in out
