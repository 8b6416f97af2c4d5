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


def test_table1_command_compares_every_method(capsys):
    main(["table1", "--n-images", "80", "--n-raters", "10", "--images-per-rater", "40",
          "--image-size", "32", "--backbone", "tiny_cnn", "--n-iterations", "3",
          "--n-repeats", "1", "--n-support", "5", "10"])
    out = capsys.readouterr().out
    for label in ("none (ImageNet", "BA-PIAA", "MAML", "Reptile", "merged", "BLG-PIAA"):
        assert label in out
    assert "5 images" in out and "10 images" in out and "prior only" in out


def test_table1_reads_a_ratings_csv(tmp_path, capsys):
    from PIL import Image

    rng = np.random.RandomState(0)
    lines = ["rater,image,score"]
    for i in range(12):
        Image.fromarray((rng.rand(24, 24, 3) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    for r in range(6):
        for i in range(12):
            lines.append(f"u{r},{i}.png,{rng.randint(1, 6)}")
    (tmp_path / "ratings.csv").write_text("\n".join(lines))
    main(["table1", "--ratings", str(tmp_path / "ratings.csv"), "--backbone", "tiny_cnn",
          "--algorithms", "blg", "average", "--n-iterations", "2", "--n-repeats", "1",
          "--n-support", "4", "--test-fraction", "0.5"])
    out = capsys.readouterr().out
    assert "6 raters (3 held out), 12 images" in out and "BLG-PIAA" in out
