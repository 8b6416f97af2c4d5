import io
import warnings

import numpy as np
import pytest
import torch
from conftest import ratings_folder

from sklearn_piaa import PIAAWarning
from sklearn_piaa._cli_parser import build_parser
from sklearn_piaa._cli_table1 import _table1_methods
from sklearn_piaa.cli import console, main, run_demo, run_table1
from sklearn_piaa.report import TABLE1_METHODS


def test_demo_runs_end_to_end_on_a_small_benchmark():
    out = io.StringIO()
    result = run_demo(n_images=80, n_raters=10, images_per_rater=40, image_size=32,
                      n_test_raters=3, n_support=(5, 20), n_repeats=1, backbone="tiny_cnn",
                      n_iterations=5, verbose=0, out=out)
    text = out.getvalue()
    assert "n_support" in text and "personalized" in text
    assert set(result.summary) == {5, 20}
    assert all(np.isfinite(s["personalized"].mean) for s in result.summary.values())


def test_demo_refuses_a_support_size_beyond_the_raters_images_before_the_work(monkeypatch):
    # refused by the evaluation, after the benchmark was built and the prior trained
    from sklearn_piaa.datasets import synthetic

    def never(**kwargs):
        raise AssertionError("the benchmark was built")

    monkeypatch.setattr(synthetic, "make_aesthetic_benchmark", never)
    with pytest.raises(ValueError, match=r"--n-support 29: each test rater has "
                                         r"--images-per-rater 30 images.*at most 28"):
        run_demo(n_images=60, n_raters=8, images_per_rater=30, n_support=(5, 29),
                 n_test_raters=2,
                 backbone="tiny_cnn", n_iterations=1, out=io.StringIO())


def test_cli_parses_and_runs(capsys):
    code = main(["demo", "--n-images", "60", "--n-raters", "8", "--images-per-rater", "30",
                 "--image-size", "32", "--n-test-raters", "2", "--n-repeats", "1",
                 "--backbone", "tiny_cnn", "--n-iterations", "3", "--quiet",
                 "--n-support", "5", "10"])
    assert code == 0
    out = capsys.readouterr().out
    assert "prior" in out and "\n        5   " in out and "\n       10   " in out


@pytest.mark.parametrize("command", ["demo", "table1"])
def test_demo_and_table1_take_a_backbone_weights_file(command, tmp_path, capsys):
    # they offered resnet18, alexnet and inception_v3, which need a weights file, but
    # had no --backbone-weights: "unrecognized arguments"
    from sklearn_piaa.nn import load_backbone

    weights = tmp_path / "tiny.pt"
    torch.save(load_backbone("tiny_cnn").state_dict(), weights)
    small = ["--n-images", "60", "--n-raters", "8", "--images-per-rater", "30",
             "--image-size", "32", "--n-repeats", "1", "--backbone", "tiny_cnn",
             "--n-iterations", "2", "--n-support", "5", "--quiet"]
    small += ["--algorithms", "blg"] if command == "table1" else ["--n-test-raters", "2"]
    main([command, *small, "--backbone-weights", str(weights)])
    assert ("BLG-PIAA" if command == "table1" else "personalized") in capsys.readouterr().out
    weights.write_text("not weights")
    with pytest.raises(ValueError, match="tiny.pt"):
        main([command, *small, "--backbone-weights", str(weights)])


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
    # the user's own held-out raters were called "the data set's test raters"
    (tmp_path / "held.csv").write_text("rater\nu1\nu4\n")
    main(["table1", "--ratings", str(tmp_path / "ratings.csv"), "--backbone", "tiny_cnn",
          "--algorithms", "blg", "--n-iterations", "2", "--n-repeats", "1",
          "--n-support", "4", "--test-raters", str(tmp_path / "held.csv"), "--quiet"])
    out = capsys.readouterr().out
    assert f"6 raters (2 held out: those of {tmp_path / 'held.csv'}), 12 images" in out
    # a held-out rater scoring beyond the training raters' range: the error advised
    # --score-range, which table1 did not have
    header, *rows = (tmp_path / "ratings.csv").read_text().splitlines()
    rows = [f"{row.rsplit(',', 1)[0]},{1 + i % 3}" for i, row in enumerate(rows)]  # 1-3
    first_u4 = next(i for i, row in enumerate(rows) if row.startswith("u4,"))
    rows[first_u4] = rows[first_u4].rsplit(",", 1)[0] + ",5"
    (tmp_path / "ratings.csv").write_text("\n".join([header, *rows]) + "\n")
    args = ["table1", "--ratings", str(tmp_path / "ratings.csv"), "--backbone", "tiny_cnn",
            "--algorithms", "blg", "--n-iterations", "2", "--n-repeats", "1",
            "--n-support", "4", "--test-raters", str(tmp_path / "held.csv"), "--quiet"]
    with pytest.raises(ValueError, match=r"--score-range LOW,HIGH on the command line"):
        main(args)
    main([*args, "--score-range", "1,5"])
    assert "BLG-PIAA" in capsys.readouterr().out


def test_meta_train_personalize_predict_evaluate_from_the_command_line(tmp_path, capsys):
    import pytest

    from sklearn_piaa import MetaAestheticRegressor, PersonalizedNet, PIAAWarning, load_model

    csv_path = ratings_folder(tmp_path)
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--n-iterations", "4", "--support-size", "8", "--query-size", "4", "--quiet",
          "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "2"])
    meta = load_model(prior)
    assert isinstance(meta, MetaAestheticRegressor) and len(meta.raters_) == 6
    said = capsys.readouterr().out
    assert "prior saved to" in said and "earlier runs" not in said  # none: a fresh run
    assert [f.suffix for f in (tmp_path / "ckpt").iterdir()] == [".pt"]  # the run's checkpoint

    # One person's ratings: no rater column needed.
    mine = tmp_path / "mine.csv"
    mine.write_text("image,score\n" + "\n".join(f"{i}.png,{1 + i % 5}" for i in range(12)))
    user = tmp_path / "user.pt"
    main(["personalize", str(prior), str(mine), "-o", str(user), "--quiet", "--epochs", "3"])
    net = load_model(user)
    assert isinstance(net, PersonalizedNet)

    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    scores = tmp_path / "scores.csv"
    with pytest.warns(PIAAWarning, match="broken.jpg"):
        main(["predict", str(user), str(tmp_path), "-o", str(scores), "--quiet"])
    rows = [line.split(",") for line in scores.read_text().splitlines()[1:]]
    assert len(rows) == 25
    by_name = {r[0].rsplit("/", 1)[-1]: float(r[1]) for r in rows}
    assert np.isnan(by_name["broken.jpg"])
    expected = net.predict([str(tmp_path / f"{i}.png") for i in range(24)])
    # the scores as the model gives them (6 digits made ties of distinct scores)
    np.testing.assert_array_equal(
        np.float32([by_name[f"{i}.png"] for i in range(24)]), np.float32(expected))

    table = tmp_path / "table.csv"
    # The prior was meta-trained on these very raters (its file keeps their ids).
    with pytest.warns(PIAAWarning, match=r"6 of the 6 test rater\(s\) were among the "
                                         "prior's 6 training raters"):
        main(["evaluate", str(prior), str(csv_path), "--n-support", "5", "--n-repeats", "2",
              "--quiet", "-o", str(table)])
    out = capsys.readouterr().out
    assert "personalized" in out and "evaluating 6 raters" in out
    lines = table.read_text().splitlines()
    assert len(lines) == 1 + 6 * 2
    assert lines[0] == "rater,repeat,n_support,n_query,srocc_prior,srocc_personalized,seed"


def test_personalize_gives_the_net_that_personalize_gives_in_python(tmp_path):
    # the command seeded fine-tuning with 0 whatever seed the prior was trained with,
    # so it gave another net than prior.personalize(X, y) (found by an audit)
    from sklearn_piaa import load_model

    csv_path = ratings_folder(tmp_path, n_images=12, n_raters=3)
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--n-iterations", "2", "--support-size", "6", "--query-size", "3", "--quiet",
          "--random-state", "5"])
    mine = tmp_path / "mine.csv"
    mine.write_text("image,score\n" + "\n".join(f"{i}.png,{1 + i % 5}" for i in range(10)))
    main(["personalize", str(prior), str(mine), "-o", str(tmp_path / "me.pt"), "--quiet"])
    main(["personalize", str(prior), str(mine), "-o", str(tmp_path / "me0.pt"), "--quiet",
          "--random-state", "0"])
    images = [str(tmp_path / f"{i}.png") for i in range(12)]
    meta = load_model(prior)
    assert meta.random_state == 5
    python = meta.personalize(images[:10], [1.0 + i % 5 for i in range(10)])
    np.testing.assert_array_equal(load_model(tmp_path / "me.pt").predict(images),
                                  python.predict(images))
    assert not np.array_equal(load_model(tmp_path / "me0.pt").predict(images),
                              python.predict(images))


def test_personalize_asks_which_rater_and_names_unknown_ones(tmp_path):
    import pytest

    csv_path = ratings_folder(tmp_path)
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--n-iterations", "2", "--support-size", "8", "--query-size", "4", "--quiet"])
    with pytest.raises(SystemExit, match="holds 6 raters: choose one with --rater"):
        main(["personalize", str(prior), str(csv_path), "-o", str(tmp_path / "u.pt")])
    with pytest.raises(SystemExit, match="no rater 'zed'"):
        main(["personalize", str(prior), str(csv_path), "-o", str(tmp_path / "u.pt"),
              "--rater", "zed"])
    main(["personalize", str(prior), str(csv_path), "-o", str(tmp_path / "u.pt"),
          "--rater", "u3", "--quiet"])
    assert (tmp_path / "u.pt").exists()


def _meta_train_with(tmp_path, rows):
    """The prior's path and a quiet tiny meta-train command on :func:`_ratings_folder`'s
    table with ``rows`` (``"rater,image,score"`` lines) appended."""
    csv_path = ratings_folder(tmp_path)
    with open(csv_path, "a") as f:
        f.write("".join(f"\n{row}" for row in rows))
    prior = tmp_path / "prior.pt"
    return prior, ["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
                   "--n-iterations", "2", "--support-size", "8", "--query-size", "4",
                   "--quiet"]


def test_meta_train_leaves_out_raters_with_too_few_images_when_asked(tmp_path, capsys):
    prior, args = _meta_train_with(tmp_path, ["lonely,0.png,3"])
    with pytest.raises(ValueError, match=r"fewer than 2 images.*'lonely' \(1\).*"
                                         r"--min-images 2"):
        main(args)
    assert not prior.exists()
    main(args + ["--min-images", "2"])
    out = capsys.readouterr().out
    assert "left out 1 rater with fewer than 2 images (--min-images): 'lonely'" in out
    assert "6 raters," in out and prior.exists()
    with pytest.raises(ValueError, match="all 7 training raters have fewer than 30 images"):
        main(args + ["--min-images", "30"])


def test_meta_train_says_when_settings_do_less_than_they_read(tmp_path, capsys):
    # --n-iterations 0 saved an untrained head, and --tasks-per-batch above the raters
    # was capped, with a log like any other run's
    prior, args = _meta_train_with(tmp_path, [])
    main(args + ["--tasks-per-batch", "8"])
    assert "8 raters per iteration (--tasks-per-batch), but only 6 raters: each iteration " \
        "takes all 6" in capsys.readouterr().out
    main(args + ["--n-iterations", "0"])
    assert "--n-iterations 0: no meta-training; the prior's head keeps its initial " \
        "weights" in capsys.readouterr().out
    main(args)
    out = capsys.readouterr().out
    assert "--tasks-per-batch" not in out and "--n-iterations" not in out


def test_meta_train_counts_the_raters_left_after_unreadable_ones(tmp_path, capsys):
    # --on-error skip: "each iteration takes all 7" was said before fit left out the
    # rater whose every image is missing, so 6 took part
    prior, args = _meta_train_with(tmp_path, [f"ghost,gone{i}.png,3" for i in range(12)])
    with pytest.warns(PIAAWarning) as record:  # the missing files, then the rater
        main(args + ["--tasks-per-batch", "8", "--on-error", "skip"])
    assert any("'ghost'" in str(w.message) for w in record)
    out = capsys.readouterr().out
    assert "each iteration takes all 7" not in out
    assert "but only 6 raters: each iteration takes all 6" in out
    assert "meta-trained on 6 raters of 7: the others had no readable image" in out


def test_meta_train_sets_the_heads_hidden_sizes(tmp_path):
    # the command line always trained the paper's 1024-512 head (0.19 s/iteration even
    # for tiny_cnn's 16 features)
    from sklearn_piaa import load_model

    prior, args = _meta_train_with(tmp_path, [])
    main(args + ["--hidden-sizes", "8", "4"])
    assert load_model(prior).hidden_sizes == (8, 4)
    with pytest.raises(SystemExit):
        main(args + ["--hidden-sizes", "0"])


def test_meta_train_leaves_out_raters_with_constant_scores_when_asked(tmp_path, capsys):
    # The fit warning advised TaskSet.subset or dropping rows: nothing a command-line
    # user could do without editing the ratings file.
    _, args = _meta_train_with(tmp_path, [f"flat,{i}.png,5" for i in range(24)])
    with pytest.warns(UserWarning, match=r"'flat' \(24 images, all 5\).*meta-train "
                                         r"command: --drop-constant-raters"):
        main(args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        main(args + ["--drop-constant-raters"])
    out = capsys.readouterr().out
    assert ("left out 1 rater who gave every image the same score "
            "(--drop-constant-raters): 'flat' (all 5)") in out
    assert "6 raters, 144 ratings" in out


def test_min_images_counts_readable_images_when_skipping(tmp_path, capsys):
    # with --on-error skip the count came before unreadable images were left out, so a
    # rater could train on fewer images than --min-images asked
    csv_path = ratings_folder(tmp_path, n_images=6, broken=True)
    with open(csv_path, "a") as f:
        f.write("\nshort,0.png,3\nshort,1.png,4\nshort,broken.jpg,2\nghost,broken.jpg,3")
    prior = tmp_path / "prior.pt"
    args = ["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
            "--n-iterations", "2", "--support-size", "4", "--query-size", "2", "--quiet",
            "--min-images", "3"]
    with pytest.warns(UserWarning, match="broken.jpg"):
        main(args + ["--on-error", "skip"])
    out = capsys.readouterr().out
    # a rater with no readable image is named too (it had vanished from the count)
    assert ("left out 2 raters with fewer than 3 readable images (--min-images): "
            "'ghost', 'short'" in out)
    assert "6 raters, 36 ratings" in out and prior.exists()


def test_a_model_is_not_written_over_a_file_that_is_no_model(tmp_path):
    # "personalize prior.pt me.csv -o ratings.csv" replaced a ratings table with a model
    csv_path = ratings_folder(tmp_path)
    prior, table = tmp_path / "prior.pt", tmp_path / "other.csv"
    table.write_text("rater,image,score\n")
    args = ["--backbone", "tiny_cnn", "--n-iterations", "2", "--support-size", "8",
            "--query-size", "4", "--quiet"]
    with pytest.raises(SystemExit, match="other.csv: the file exists and is not an "
                                         "sklearn-piaa model"):
        main(["meta-train", str(csv_path), "-o", str(table), *args])
    # another program's archive is no model either (torch weights, a zip of photos)
    torch.save({"w": torch.zeros(3)}, tmp_path / "weights.pth")
    with pytest.raises(SystemExit, match="weights.pth: the file exists and is not an"):
        main(["meta-train", str(csv_path), "-o", str(tmp_path / "weights.pth"), *args])
    # the backbone's weights file is an input, refused before it is read
    with pytest.raises(SystemExit, match="is the input file"):
        main(["meta-train", str(csv_path), "--backbone", "resnet18", "--backbone-weights",
              str(tmp_path / "weights.pth"), "-o", str(tmp_path / "weights.pth")])
    (tmp_path / "empty.pt").write_bytes(b"")  # nothing to lose
    main(["meta-train", str(csv_path), "-o", str(tmp_path / "empty.pt"), *args])
    main(["meta-train", str(csv_path), "-o", str(prior), *args])
    main(["meta-train", str(csv_path), "-o", str(prior), *args])  # a model: replaced
    with pytest.raises(SystemExit, match="other.csv: the file exists and is not an"):
        main(["personalize", str(prior), str(csv_path), "--rater", "u1", "-o", str(table)])
    assert table.read_text() == "rater,image,score\n"


def test_every_option_of_every_command_is_explained():
    from sklearn_piaa._cli_parser import build_parser

    parser, sub = build_parser()
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings or action.dest}"


def _flickr_folder(root, n_workers=8, n_images=12):
    from PIL import Image

    rng = np.random.RandomState(0)
    (root / "40K").mkdir(parents=True)
    for i in range(n_images):
        Image.fromarray((rng.rand(24, 24, 3) * 255).astype(np.uint8)).save(
            root / "40K" / f"{i}.jpg")
    lines = ["worker, imagePair, score"]  # the layout as distributed
    for w in range(n_workers):
        lines += [f"A{w}, {i}.jpg, {rng.randint(1, 6)}" for i in range(n_images)]
    (root / "FLICKR-AES_image_labeled_by_each_worker.csv").write_text("\n".join(lines))
    return root


def test_table1_holds_out_a_data_sets_own_test_raters(tmp_path, capsys):
    # table1 drew 20% of the raters at random whatever the data: on FLICKR-AES not
    # the 37 test workers the literature's tables report
    import pytest

    root = _flickr_folder(tmp_path / "flickr")
    (root / "test_workers.csv").write_text("worker\nA2\nA5\n")
    args = build_parser()[0].parse_args(
        ["table1", "--ratings", str(root), "--format", "flickr-aes", "--backbone",
         "tiny_cnn", "--algorithms", "ridge", "--n-repeats", "1", "--n-support", "4",
         "--quiet"])
    results = run_table1(args)
    assert "8 raters (2 held out: the data set's test raters)" in capsys.readouterr().out
    assert sorted(set(results["ridge"].table["rater"].tolist())) == ["A2", "A5"]
    with pytest.raises(SystemExit, match="--test-fraction with --format flickr-aes"):
        main(["table1", "--ratings", str(root), "--format", "flickr-aes",
              "--test-fraction", "0.5"])
    with pytest.raises(SystemExit, match="--rater-col does not apply.*--format flickr-aes"):
        main(["table1", "--ratings", str(root), "--format", "flickr-aes",
              "--rater-col", "worker"])
    with pytest.raises(SystemExit, match="--format flickr-aes does not apply without "
                                         "--ratings"):
        main(["table1", "--format", "flickr-aes"])


def test_table1_on_a_folder_of_photos(tmp_path, capsys):
    from PIL import Image

    rng = np.random.RandomState(0)
    for i in range(30):
        Image.fromarray((rng.rand(32, 40, 3) * 255).astype(np.uint8)).save(tmp_path / f"{i}.jpg")
    main(["table1", "--photos", str(tmp_path), "--backbone", "tiny_cnn", "--n-raters", "8",
          "--images-per-rater", "20", "--algorithms", "blg", "average", "pam_attributes",
          "--attributes", "--n-iterations", "2", "--n-repeats", "1", "--n-support", "5",
          "--test-fraction", "0.25", "--quiet"])
    out = capsys.readouterr().out
    assert "30 photos measured; 8 simulated raters" in out
    # The photos' attributes are measured once, for the raters and for PAM alike.
    assert "attributes measured" not in out
    assert "BLG-PIAA" in out and "BA-PIAA" in out and "PAM (attributes)" in out
    # the built-in benchmark's sizes were ignored without a word
    with pytest.raises(SystemExit, match=r"--n-images, --image-size size the built-in "
                                         r"benchmark, and --photos uses every photo"):
        main(["table1", "--photos", str(tmp_path), "--n-images", "10", "--image-size", "16"])
    # capped at the 30 photos without a word, where the built-in benchmark refuses it
    with pytest.raises(SystemExit, match=r"--images-per-rater 100 exceeds the 30 photos "
                                         r"of --photos"):
        main(["table1", "--photos", str(tmp_path), "--images-per-rater", "100"])
    with pytest.raises(SystemExit, match=r"--n-raters sizes the built-in benchmark, and "
                                         r"--ratings reads its raters and images: leave it"):
        main(["table1", "--ratings", str(tmp_path / "r.csv"), "--n-raters", "5"])


SMALL_TABLE1 = ["table1", "--n-images", "80", "--n-raters", "10", "--images-per-rater", "40",
                "--image-size", "32", "--backbone", "tiny_cnn", "--n-iterations", "3",
                "--n-repeats", "1", "--n-support", "5", "10", "--quiet"]


def test_table1_gives_the_pam_and_pa_iaa_rows_on_the_built_in_benchmark(capsys):
    results = run_table1(build_parser()[0].parse_args(
        SMALL_TABLE1 + ["--attributes", "--personality",
                        "--algorithms", "blg", "pam", "pam_attributes", "pa_iaa"]))
    out = capsys.readouterr().out
    assert "attributes measured on 80 images" in out
    for label in ("PAM (attributes + content)", "PAM (attributes)", "PA_IAA"):
        assert label in out
    assert list(results) == ["blg", "pam", "pam_attributes", "pa_iaa"]
    # The same raters and support draws for every row: paired differences.
    for res in results.values():
        np.testing.assert_array_equal(res.table["rater"], results["blg"].table["rater"])
        np.testing.assert_array_equal(res.table["n_query"], results["blg"].table["n_query"])
    assert all(np.isfinite(res.summary[10]["personalized"].mean) for res in results.values())


def test_table1_default_rows_follow_the_flags():
    parser = build_parser()[0]
    plain = _table1_methods(parser.parse_args(["table1"]))
    assert plain == list(TABLE1_METHODS)
    full = _table1_methods(parser.parse_args(["table1", "--attributes", "--personality"]))
    assert set(full) - set(plain) == {"pam", "pam_attributes", "pa_iaa"}
    assert full.index("pam") < full.index("pam_attributes") < full.index("pam_content")
    with pytest.raises(SystemExit, match="pam_attributes use.* add --attributes"):
        main(["table1", "--algorithms", "blg", "pam_attributes"])
    with pytest.raises(SystemExit, match="pa_iaa needs the raters' Big-Five personality"):
        main(["table1", "--algorithms", "pa_iaa"])
    with pytest.raises(SystemExit):  # argparse: not a method
        main(["table1", "--algorithms", "pamm"])
    # with --algorithms the flags add no row: said, not done quietly
    args = parser.parse_args(["table1", "--algorithms", "blg", "ridge", "--attributes",
                              "--personality"])
    with pytest.warns(PIAAWarning) as record:
        assert _table1_methods(args) == ["blg", "ridge"]
    assert len(record) == 2 and "name pam or pam_attributes" in str(record[0].message)
    assert "name pa_iaa to run it" in str(record[1].message)


def _personality_file(tmp_path, raters, header="rater,O,C,E,A,N", rows=None):
    rng = np.random.RandomState(1)
    rows = rows if rows is not None else [
        f"{r}," + ",".join(f"{v:.3f}" for v in np.tanh(rng.randn(5))) for r in raters]
    path = tmp_path / "personality.csv"
    path.write_text("\n".join([header, *rows]))
    return path


def test_table1_on_a_ratings_csv_with_attributes_and_a_personality_file(tmp_path, capsys):
    csv_path = ratings_folder(tmp_path)
    traits = _personality_file(tmp_path, [f"u{r}" for r in range(6)] + ["not_rating"])
    # a column besides the traits, and the traits named in another order
    lines = traits.read_text().splitlines()
    traits.write_text("\n".join(["age," + lines[0]] + [f"30,{r}" for r in lines[1:]]))
    main(["table1", "--ratings", str(csv_path), "--backbone", "tiny_cnn", "--attributes",
          "--personality", str(traits), "--trait-cols", "N", "A", "E", "C", "O",
          "--algorithms", "blg", "pam", "pa_iaa",
          "--n-iterations", "2", "--n-repeats", "1", "--n-support", "4",
          "--test-fraction", "0.5", "--quiet"])
    out = capsys.readouterr().out
    assert "attributes measured on 24 images" in out
    assert "6 raters (3 held out), 24 images" in out
    for label in ("BLG-PIAA", "PAM (attributes + content)", "PA_IAA"):
        assert label in out


def test_table1_reads_an_aadb_personality_file_by_the_layout_s_rater_column(tmp_path,
                                                                              capsys):
    # AADB as distributed (Mechanical Turk's table) names its raters WorkerId: the
    # personality file had to say workerID (the other layout's), and the error's advice,
    # --rater-col, is refused with --format.
    from PIL import Image

    from sklearn_piaa.datasets.readers import _aadb_image_name

    folder = tmp_path / "aadb"
    (folder / "datasetImages_originalSize").mkdir(parents=True)
    rng = np.random.RandomState(0)
    rows = ["WorkerId," + ",".join(f"Input.image_url{k}" for k in range(1, 5)) + ","
            + ",".join(f"Answer.overallScore{k}" for k in range(1, 5))]
    for w in ["A1", "A2", "A3"]:
        for h in range(2):
            urls = [f"http://farm{h}.staticflickr.com/1{k}/{k}_{h}_b.jpg" for k in range(1, 5)]
            rows.append(f"{w},{','.join(urls)}," + ",".join(str(1 + (k + h) % 5)
                                                           for k in range(4)))
            for u in urls:
                Image.fromarray((rng.rand(16, 16, 3) * 255).astype(np.uint8)).save(
                    folder / "datasetImages_originalSize" / _aadb_image_name(u))
    (folder / "AADB_AllinAll.csv").write_text("\n".join(rows) + "\n")
    (folder / "test.csv").write_text("WorkerId\nA3\n")
    traits = _personality_file(tmp_path, ["A1", "A2", "A3"], header="WorkerId,O,C,E,A,N")
    main(["table1", "--ratings", str(folder), "--format", "aadb", "--personality",
          str(traits), "--test-raters", str(folder / "test.csv"), "--backbone", "tiny_cnn",
          "--algorithms", "pa_iaa", "--n-iterations", "2", "--n-support", "2",
          "--n-repeats", "1", "--quiet"])
    assert "PA_IAA" in capsys.readouterr().out


@pytest.mark.parametrize("header, rows, message", [
    ("rater,O,C,E,A,N", ["u0,0,0,0,0,0"],
     r"has no traits for 5 rater\(s\) of .*ratings.csv: u1, u2, u3, u4, u5"),
    ("rater,O,C,E,A,N", ["x0,0,0,0,0,0", "x1,0,0,0,0,0"],
     r"None of its ids \(x0, x1\) is a rater of"),
    ("rater,O,C,E,A,N", ["u0,0,0,high,0,0"], r"personality.csv, line 2: 'E' is 'high'"),
    ("rater,O,C,E,A,N", ["u0,0,0,0,0,0", "u1,0,4,0,0,0"],
     r"line 3: 'C' is '4'; traits must be numbers in \[-1, 1\]"),
    ("rater,O,C,E,A", ["u0,0,0,0,0"], r"4 column\(s\) besides 'rater'.*five Big-Five"),
    ("image,O,C,E,A,N", ["0.png,0,0,0,0,0"], r"image -> traits table \(the PsychoFlickr"),
    ("person,O,C,E,A,N", ["u0,0,0,0,0,0"], r"no 'rater' column \(columns: \['person'"),
    ("rater,O,C,E,A,N", ["u0,0,0,0,0,0", "u0,0,0,0,0,0"], r"line 3: rater 'u0' appears a "),
    # kept under the id "" without a word; "0_1" read as 1 (Python's digit grouping)
    ("rater,O,C,E,A,N", ["u0,0,0,0,0,0", ",0,0,0,0,0"], r"line 3: the 'rater' cell is empty"),
    ("rater,O,C,E,A,N", ["u0,0_1,0,0,0,0"], r"line 2: 'O' is '0_1'; traits must be numbers"),
    ("rater,O,C,E,A,N", ["u0,0,0,0,0"], r"personality.csv, line 2: 5 field\(s\)"),
    ("rater,age,O,C,E,A,N", ["u0,30,0,0,0,0,0"],
     r"6 column\(s\) besides 'rater'.*trait_cols \(the command line's --trait-cols\)"),
    ("rater,age,O,C,E,A,N --trait-cols O C E A X", ["u0,30,0,0,0,0,0"],
     r"lacks the trait column\(s\) \['X'\]"),
])
def test_table1_names_what_is_wrong_with_a_personality_file(tmp_path, header, rows, message):
    header, *options = header.split(" ")
    csv_path = ratings_folder(tmp_path, n_images=4)
    traits = _personality_file(tmp_path, None, header, rows)
    with pytest.raises(SystemExit, match=message):
        main(["table1", "--ratings", str(csv_path), "--personality", str(traits),
              "--backbone", "tiny_cnn", "--quiet", *options])


def test_table1_says_which_personality_source_goes_with_which_data(tmp_path):
    csv_path = ratings_folder(tmp_path, n_images=4)
    with pytest.raises(SystemExit, match="personality file not found: .*missing.csv"):
        main(["table1", "--ratings", str(csv_path), "--personality",
              str(tmp_path / "missing.csv")])
    with pytest.raises(SystemExit, match="--personality needs a FILE with --ratings"):
        main(["table1", "--ratings", str(csv_path), "--personality"])
    with pytest.raises(SystemExit, match="makes its own raters' personality table"):
        main(["table1", "--personality", str(csv_path)])
    with pytest.raises(SystemExit, match="simulated raters of --photos have no personality"):
        main(["table1", "--photos", str(tmp_path), "--personality"])
    for personality in ([], ["--personality"]):
        with pytest.raises(SystemExit, match="--trait-cols names the columns of a "):
            main(["table1", *personality, "--trait-cols", "O", "C", "E", "A", "N"])


def test_personalize_predict_evaluate_with_a_saved_baseline(tmp_path, capsys):
    from sklearn_piaa import PIAAWarning, load_model, save_model
    from sklearn_piaa.baselines import ConsensusRidgeRegressor, PersonalizedBaseline
    from sklearn_piaa.datasets import read_ratings

    csv_path = ratings_folder(tmp_path)
    data = read_ratings(csv_path)
    prior = tmp_path / "ridge.pt"
    save_model(ConsensusRidgeRegressor(backbone="tiny_cnn").fit(data.tasks), prior)
    mine = tmp_path / "mine.csv"
    mine.write_text("image,score\n" + "\n".join(f"{i}.png,{1 + i % 5}" for i in range(12)))
    user = tmp_path / "user.pt"
    with pytest.raises(SystemExit, match="personalizes by ridge regression: --epochs"):
        main(["personalize", str(prior), str(mine), "-o", str(user), "--epochs", "3"])
    main(["personalize", str(prior), str(mine), "-o", str(user), "--quiet"])
    model = load_model(user)
    assert isinstance(model, PersonalizedBaseline)

    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    scores = tmp_path / "scores.csv"
    with pytest.warns(PIAAWarning, match="broken.jpg"):
        main(["predict", str(user), str(tmp_path), "-o", str(scores), "--quiet"])
    by_name = {row.split(",")[0].rsplit("/", 1)[-1]: float(row.split(",")[1])
               for row in scores.read_text().splitlines()[1:]}
    assert np.isnan(by_name["broken.jpg"])
    expected = model.predict([str(tmp_path / f"{i}.png") for i in range(24)])
    np.testing.assert_allclose([by_name[f"{i}.png"] for i in range(24)], expected, rtol=1e-5)

    main(["evaluate", str(prior), str(csv_path), "--n-support", "5", "--n-repeats", "1",
          "--quiet"])
    assert "evaluating 6 raters" in capsys.readouterr().out
    # as personalize refuses them: a baseline has no fine-tuning to set
    with pytest.raises(SystemExit, match=r"ridge.pt holds a ConsensusRidgeRegressor, which "
                                         r"personalizes by ridge regression: --epochs, --lr "
                                         r"and --batch-size do not apply\."):
        main(["evaluate", str(prior), str(csv_path), "--n-support", "5", "--n-repeats", "1",
              "--quiet", "--lr", "1e-3"])

    # A baseline on precomputed features cannot read the command line's image files.
    X = np.random.RandomState(0).randn(60, 4)
    save_model(ConsensusRidgeRegressor().fit(X, X[:, 0], groups=np.repeat([0, 1, 2], 20)),
               tmp_path / "features.pt")
    with pytest.raises(SystemExit, match="fitted on precomputed features"):
        main(["predict", str(tmp_path / "features.pt"), str(tmp_path)])


def _photos(folder, seed, n=4):
    """``n`` new images in ``folder``: none is in the memo this process's embedders share,
    so each is embedded, and written to a cache folder where there is one."""
    from PIL import Image

    folder.mkdir()
    rng = np.random.RandomState(seed)
    for i in range(n):
        arr = (rng.rand(24, 24, 3) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    return str(folder)


def _n_cached(folder):
    """How many embeddings a cache folder holds."""
    import os

    return sum(len(files) for _, _, files in os.walk(folder))


def test_the_cache_folder_a_model_file_carries_is_said_and_can_be_replaced(tmp_path,
                                                                           capsys):
    # A model file keeps its author's cache_dir, an absolute path: predict, run from
    # elsewhere or by whoever received the file, wrote its embeddings there, unsaid,
    # and only Python's set_params could choose another folder or none.
    from sklearn_piaa import load_model, save_model
    from sklearn_piaa.baselines import ConsensusRidgeRegressor
    from sklearn_piaa.datasets import read_ratings

    csv_path = ratings_folder(tmp_path)
    author, mine = tmp_path / "author" / "cache", tmp_path / "mine"
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--n-iterations", "2", "--support-size", "8", "--query-size", "4", "--quiet",
          "--cache-dir", str(author)])
    capsys.readouterr()
    n_author = _n_cached(author)
    assert n_author == 24

    # the model's own folder, as before, and a line that says so
    main(["predict", str(prior), _photos(tmp_path / "a", 1), "-o", str(tmp_path / "a.csv")])
    assert (f"embeddings cached in {author} (the model's cache_dir; --cache-dir to change, "
            "--no-cache to turn off)\n") in capsys.readouterr().out
    assert _n_cached(author) == n_author + 4
    # with -o - on standard error, beside the progress bars: the scores are the output
    main(["predict", str(prior), _photos(tmp_path / "b", 2)])
    captured = capsys.readouterr()
    assert f"embeddings cached in {author}" in captured.err
    assert captured.out.startswith("image,predicted_score\n")
    main(["predict", str(prior), _photos(tmp_path / "c", 3), "-o", str(tmp_path / "c.csv"),
          "--quiet"])
    assert "embeddings cached" not in capsys.readouterr().out
    assert _n_cached(author) == n_author + 12

    # --cache-dir: another folder (relative to here); --no-cache: none. Neither is said.
    main(["predict", str(prior), _photos(tmp_path / "d", 4), "-o", str(tmp_path / "d.csv"),
          "--cache-dir", str(mine)])
    main(["predict", str(prior), _photos(tmp_path / "e", 5), "-o", str(tmp_path / "e.csv"),
          "--no-cache"])
    assert "embeddings cached" not in capsys.readouterr().out
    assert (_n_cached(author), _n_cached(mine)) == (n_author + 12, 4)

    # personalize: the personalized model saved keeps the folder chosen
    photos = _photos(tmp_path / "f", 6, n=10)
    mine_csv = tmp_path / "mine.csv"
    mine_csv.write_text("image,score\n" + "\n".join(f"{photos}/{i}.png,{1 + i % 5}"
                                                    for i in range(10)))
    user = tmp_path / "user.pt"
    main(["personalize", str(prior), str(mine_csv), "-o", str(user), "--quiet",
          "--epochs", "1", "--no-cache"])
    assert load_model(user).prior_.cache_dir is None
    assert (_n_cached(author), _n_cached(mine)) == (n_author + 12, 4)
    main(["personalize", str(prior), str(mine_csv), "-o", str(user), "--epochs", "1",
          "--cache-dir", str(mine)])
    assert "embeddings cached" not in capsys.readouterr().out
    assert load_model(user).prior_.cache_dir == str(mine) and _n_cached(mine) == 14
    # a loaded personalized net shares its prior's embedder: the option reaches it
    main(["predict", str(user), _photos(tmp_path / "g", 7), "-o", str(tmp_path / "g.csv")])
    assert f"embeddings cached in {mine} (the model's" in capsys.readouterr().out
    main(["predict", str(user), _photos(tmp_path / "h", 8), "-o", str(tmp_path / "h.csv"),
          "--no-cache"])
    assert (_n_cached(author), _n_cached(mine)) == (n_author + 12, 18)

    # evaluate
    with pytest.warns(PIAAWarning, match="training raters"):
        main(["evaluate", str(prior), str(csv_path), "--n-support", "5", "--n-repeats", "1"])
    assert f"embeddings cached in {author}" in capsys.readouterr().out
    with pytest.warns(PIAAWarning, match="training raters"):
        main(["evaluate", str(prior), str(csv_path), "--n-support", "5", "--n-repeats", "1",
              "--no-cache"])
    assert "embeddings cached" not in capsys.readouterr().out

    # a baseline's embedder, which the model file's cache_dir is read from
    ridge = tmp_path / "ridge.pt"
    save_model(ConsensusRidgeRegressor(backbone="tiny_cnn", cache_dir=author)
               .fit(read_ratings(csv_path).tasks), ridge)
    before = _n_cached(author)
    main(["predict", str(ridge), _photos(tmp_path / "i", 9), "-o", str(tmp_path / "i.csv"),
          "--cache-dir", str(mine)])
    assert (_n_cached(author), _n_cached(mine)) == (before, 22)

    # a model whose cache folder cannot be made here: the warning that says so is moot
    # where the command line chooses
    import shutil

    shutil.rmtree(tmp_path / "author")
    with pytest.warns(PIAAWarning, match="cache_dir .* cannot be made here"):
        main(["predict", str(prior), _photos(tmp_path / "j", 10), "-o",
              str(tmp_path / "j.csv")])
    assert "embeddings cached" not in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        main(["predict", str(prior), _photos(tmp_path / "k", 11), "-o",
              str(tmp_path / "k.csv"), "--no-cache"])
        main(["predict", str(prior), _photos(tmp_path / "l", 12), "-o",
              str(tmp_path / "l.csv"), "--cache-dir", str(mine)])
    assert _n_cached(mine) == 26 and not (tmp_path / "author").exists()
    with pytest.raises(SystemExit):  # one or the other
        main(["predict", str(prior), str(tmp_path / "l"), "--no-cache", "--cache-dir", "x"])


def test_predict_writes_a_file_name_that_is_not_utf8_as_it_is(tmp_path):
    import os

    from PIL import Image

    csv_path = ratings_folder(tmp_path, n_images=12, n_raters=3)
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--n-iterations", "2", "--support-size", "6", "--query-size", "4", "--quiet"])
    photos = os.path.join(os.fsencode(tmp_path), b"photos")
    os.mkdir(photos)
    # the format named: Pillow 10.0 finds none for a bytes name's b".png"
    Image.new("RGB", (24, 24), (200, 60, 30)).save(os.path.join(photos, b"caf\xe9.png"), "PNG")
    out = tmp_path / "scores.csv"
    # It failed writing the CSV after scoring everything (UnicodeEncodeError).
    main(["predict", str(prior), os.fsdecode(photos), "-o", str(out), "--quiet"])
    rows = out.read_bytes().splitlines()
    assert len(rows) == 2 and rows[1].startswith(os.path.join(photos, b"caf\xe9.png,"))
    assert np.isfinite(float(rows[1].rsplit(b",", 1)[1]))


def test_personalize_and_evaluate_skip_bad_images_when_asked_and_keep_quiet(tmp_path,
                                                                          capsys):
    # their errors advised --on-error skip, which neither had; and a prior trained with
    # progress bars drew them under --quiet
    import pytest

    from sklearn_piaa import PIAAWarning

    csv_path = ratings_folder(tmp_path, broken=True)
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--n-iterations", "2", "--support-size", "8", "--query-size", "4"])
    capsys.readouterr()
    mine = tmp_path / "mine.csv"
    mine.write_text("image,score\n" + "\n".join(f"{i}.png,{1 + i % 5}" for i in range(12))
                    + "\nbroken.jpg,3\ngone.jpg,2")
    user = tmp_path / "user.pt"
    with pytest.raises(FileNotFoundError, match="--on-error skip"):
        main(["personalize", str(prior), str(mine), "-o", str(user), "--quiet"])
    with pytest.warns(PIAAWarning, match="broken.jpg"):
        main(["personalize", str(prior), str(mine), "-o", str(user), "--quiet",
              "--on-error", "skip", "--epochs", "2"])
    captured = capsys.readouterr()
    assert "on 12 images, 2 unreadable left out" in captured.out
    lines = csv_path.read_text().splitlines()
    with_bad = tmp_path / "with_bad.csv"
    with_bad.write_text("\n".join(lines + [f"u{r},broken.jpg,3" for r in range(6)]))
    table = tmp_path / "table.csv"
    with pytest.raises(ValueError, match="broken.jpg"):
        main(["evaluate", str(prior), str(with_bad), "--n-support", "5", "--n-repeats", "2",
              "--quiet"])
    with pytest.warns(PIAAWarning, match="broken.jpg"):
        main(["evaluate", str(prior), str(with_bad), "--n-support", "5", "--n-repeats", "2",
              "--quiet", "--on-error", "skip", "-o", str(table)])
    rows = [line.split(",") for line in table.read_text().splitlines()[1:]]
    assert len(rows) == 12 and {r[3] for r in rows} == {"19"}  # 24 readable - 5 support
    assert all(np.isfinite(float(r[5])) for r in rows)
    quiet = captured.err + capsys.readouterr().err
    assert "embed" not in quiet and "evaluate:" not in quiet
    main(["evaluate", str(prior), str(csv_path), "--n-support", "5", "--n-repeats", "1"])
    # the bars it has without --quiet (not "embed": the images may all be embedded
    # already, in the memo that equal frozen backbones of this process share)
    assert "evaluate:" in capsys.readouterr().err


def test_cache_options_that_do_nothing_are_refused_or_said(tmp_path, capsys):
    # an empty --cache-dir cached in the working folder; on a whole-network model the
    # cache options were ignored, unsaid
    csv_path = ratings_folder(tmp_path, n_images=12, n_raters=4)
    prior = tmp_path / "prior.pt"
    meta_train = ["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
                  "--n-iterations", "1", "--support-size", "4", "--query-size", "2",
                  "--quiet"]
    with pytest.raises(SystemExit):
        main(meta_train + ["--cache-dir", ""])
    assert ("argument --cache-dir: expected a folder, got an empty value; to turn the "
            "cache off, leave the option out") in capsys.readouterr().err
    # so were --checkpoint-dir and --image-root (the working folder, not the CSV's)
    for option, advice in [("--checkpoint-dir", "for no checkpoints"),
                           ("--image-root", "for the CSV's folder (with --format, the "
                                            "data set's image folder)")]:
        with pytest.raises(SystemExit):
            main(meta_train + [option, ""])
        assert (f"argument {option}: expected a folder, got an empty value; {advice}, "
                "leave the option out") in capsys.readouterr().err
    main(meta_train + ["--train-backbone", "--cache-dir", str(tmp_path / "cache")])
    assert ("--cache-dir has no effect with --train-backbone"
            in capsys.readouterr().out)
    assert not (tmp_path / "cache").exists()
    photos = _photos(tmp_path / "a", 1)
    with pytest.raises(SystemExit):
        main(["predict", str(prior), photos, "--cache-dir", ""])
    assert "to turn the cache off, give --no-cache" in capsys.readouterr().err
    for option in (["--no-cache"], ["--cache-dir", str(tmp_path / "cache")]):
        main(["predict", str(prior), photos, "-o", str(tmp_path / "a.csv"), "--quiet",
              *option])
        assert (f"{option[0]} has no effect: this model trains its whole network"
                in capsys.readouterr().out)
    assert not (tmp_path / "cache").exists()


def test_personalize_skips_bad_images_of_a_whole_network_prior_without_predicting(
        tmp_path, capsys, monkeypatch):
    # it counted the unreadable images by predicting every image with the prior: a
    # forward pass of the whole network, only to count
    import pytest

    from sklearn_piaa import MetaAestheticRegressor, PersonalizedNet, PIAAWarning, load_model

    csv_path = ratings_folder(tmp_path, n_images=12, n_raters=4, broken=True)
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--train-backbone", "--n-iterations", "1", "--support-size", "4",
          "--query-size", "2", "--quiet"])
    mine = tmp_path / "mine.csv"
    mine.write_text("image,score\n" + "\n".join(f"{i}.png,{1 + i % 5}" for i in range(8))
                    + "\nbroken.jpg,3\ngone.jpg,2")

    def no_predict(self, X):
        raise AssertionError("the prior predicted")

    monkeypatch.setattr(MetaAestheticRegressor, "predict", no_predict)
    capsys.readouterr()
    with pytest.warns(PIAAWarning, match="broken.jpg"):
        main(["personalize", str(prior), str(mine), "-o", str(tmp_path / "u.pt"),
              "--quiet", "--on-error", "skip", "--epochs", "1"])
    assert "on 8 images, 2 unreadable left out" in capsys.readouterr().out
    assert isinstance(load_model(tmp_path / "u.pt"), PersonalizedNet)



def test_whole_network_options_reach_the_prior_and_its_fine_tuning(tmp_path, monkeypatch):
    # meta-train had no --inner-backbone-lr, --mixed-precision or --finetune-batch-size,
    # personalize no --batch-size: a whole-network rater's images went in one batch
    import pytest

    from sklearn_piaa import MetaAestheticRegressor, load_model

    csv_path = ratings_folder(tmp_path, n_images=12, n_raters=4)
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--train-backbone", "--n-iterations", "1", "--support-size", "4",
          "--query-size", "2", "--quiet", "--inner-backbone-lr", "3e-5",
          "--mixed-precision", "--finetune-batch-size", "4"])
    meta = load_model(prior)
    assert (meta.inner_backbone_lr, meta.mixed_precision, meta.finetune_batch_size) == (
        3e-5, True, 4)
    mine = tmp_path / "mine.csv"
    mine.write_text("image,score\n" + "\n".join(f"{i}.png,{1 + i % 5}" for i in range(8)))
    batch_sizes = []
    personalize = MetaAestheticRegressor.personalize

    def logged(self, X, y, **params):
        net = personalize(self, X, y, **params)
        batch_sizes.append(net.batch_size)
        return net

    monkeypatch.setattr(MetaAestheticRegressor, "personalize", logged)
    for extra, size in (([], 4), (["--batch-size", "2"], 2)):
        main(["personalize", str(prior), str(mine), "-o", str(tmp_path / "u.pt"),
              "--quiet", "--epochs", "1", *extra])
        assert batch_sizes[-1] == size
    with pytest.raises(SystemExit):
        main(["personalize", str(prior), str(mine), "-o", str(tmp_path / "u.pt"),
              "--batch-size", "0"])

def test_meta_train_stores_the_fine_tuning_length_and_rate_in_the_prior(tmp_path):
    # meta-train took --finetune-batch-size only: a prior from the command line always
    # fine-tuned for 20 epochs at the default rate
    from sklearn_piaa import MetaAestheticRegressor, load_model

    csv_path = ratings_folder(tmp_path, n_images=12, n_raters=4)
    args = ["meta-train", str(csv_path), "--backbone", "tiny_cnn", "--n-iterations", "1",
            "--support-size", "4", "--query-size", "2", "--quiet"]
    main([*args, "-o", str(tmp_path / "p.pt"), "--finetune-epochs", "3",
          "--finetune-lr", "2e-4"])
    meta = load_model(tmp_path / "p.pt")
    assert (meta.finetune_epochs, meta.finetune_lr) == (3, 2e-4)
    main([*args, "-o", str(tmp_path / "default.pt")])
    meta, default = load_model(tmp_path / "default.pt"), MetaAestheticRegressor()
    assert (meta.finetune_epochs, meta.finetune_lr) == (default.finetune_epochs,
                                                        default.finetune_lr)


@pytest.mark.filterwarnings("ignore:.*scored on fewer than 10 query images")
@pytest.mark.filterwarnings("ignore:.*were among the prior's 4 training raters")
def test_evaluate_fine_tunes_with_the_epochs_rate_and_batch_size_given(tmp_path,
                                                                         monkeypatch):
    # evaluate (the paper's protocol) had no --epochs, --lr or --batch-size: it always
    # fine-tuned with the prior's settings
    from sklearn_piaa import MetaAestheticRegressor

    csv_path = ratings_folder(tmp_path, n_images=12, n_raters=4)
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--n-iterations", "1", "--support-size", "4", "--query-size", "2", "--quiet"])
    settings = []
    personalize = MetaAestheticRegressor.personalize

    def logged(self, X, y, **params):
        net = personalize(self, X, y, **params)
        settings.append((net.max_epochs, net.lr, net.batch_size))
        return net

    monkeypatch.setattr(MetaAestheticRegressor, "personalize", logged)
    args = ["evaluate", str(prior), str(csv_path), "--n-support", "4", "--n-repeats", "1",
            "--quiet"]
    main([*args, "--epochs", "2", "--lr", "5e-4", "--batch-size", "3"])
    assert settings and set(settings) == {(2, 5e-4, 3)}
    settings.clear()
    main([*args, "--epochs", "1"])  # the others: the prior's (the rate follows the batch)
    assert settings and {s[0] for s in settings} == {1} and {s[1] for s in settings} != {5e-4}


@pytest.mark.parametrize("argv", [
    ["meta-train", "missing.csv", "-o", "p.pt"],
    ["personalize", "missing.pt", "missing.csv", "-o", "u.pt"],
    ["predict", "missing.pt", "missing/"],
    ["evaluate", "missing.pt", "missing.csv"],
])
def test_an_unusable_device_is_refused_first_in_the_command_line_s_spelling(
        argv, tmp_path, monkeypatch, capsys):
    # meta-train --device cuda read and checked the whole ratings table and every image
    # file (evaluate the table, predict the folders) before saying "use device='cpu'"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)  # none of the files exists: the device is checked first
    assert console([*argv, "--device", "cuda"]) == 1
    assert capsys.readouterr().err == (
        "sklearn-piaa: error: --device cuda was requested but CUDA is not available on "
        "this machine; use --device cpu.\n")
    assert console([*argv, "--device", "gpu 1"]) == 1
    assert capsys.readouterr().err.startswith(
        "sklearn-piaa: error: --device 'gpu 1' is not a valid torch device: ")


def test_the_command_keeps_freed_memory_unless_the_environment_chooses(monkeypatch):
    import ctypes
    import sys

    from sklearn_piaa import _cli_common, cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1))
    monkeypatch.setattr(cli, "main", lambda argv: 0)
    assert cli.console([]) == 0 and calls == [1]
    for name in _cli_common._ALLOCATOR_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")  # the user's choice stands
    assert _cli_common.keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    try:
        glibc = sys.platform.startswith("linux") and bool(
            ctypes.CDLL("libc.so.6").gnu_get_libc_version)
    except (OSError, AttributeError):
        glibc = False
    assert _cli_common.keep_freed_memory() is glibc


def test_a_task_vector_model_file_is_refused_by_name(tmp_path):
    from sklearn_piaa import MetaAestheticRegressor, TaskVectorRegressor, save_model

    rng = np.random.RandomState(0)
    X, users = rng.randn(120, 4).astype(np.float32), np.repeat(np.arange(4), 30)
    base = MetaAestheticRegressor(backbone=None, hidden_sizes=(8,), algorithm="average",
                                  n_iterations=5, support_size=10, query_size=5,
                                  random_state=0)
    tv = TaskVectorRegressor(base, n_sources=2, source_epochs=1, random_state=0).fit(
        X, np.clip(3 + X[:, 0], 1, 5), groups=users)
    save_model(tv, tmp_path / "tv.pt")
    mine = tmp_path / "mine.csv"
    mine.write_text("image,score\n" + "\n".join(f"{i}.png,{1 + i % 5}" for i in range(4)))
    for argv in (["personalize", str(tmp_path / "tv.pt"), str(mine), "-o",
                  str(tmp_path / "me.pt")],
                 ["predict", str(tmp_path / "tv.pt"), str(tmp_path / "mine.csv")]):
        with pytest.raises(SystemExit, match="holds a TaskVectorRegressor.*from Python"):
            main(argv + ["--quiet"])
    assert not (tmp_path / "me.pt").exists()


def test_table1_on_para_with_paras_own_user_file(tmp_path, capsys):
    # table1 looked for a 'rater' column in PARA-UserInfo.csv (PARA's is userId), and
    # --rater-col is refused with --format.
    from PIL import Image

    rng = np.random.RandomState(0)
    rows = ["userId,sessionId,imageName,aestheticScore"]
    (tmp_path / "imgs" / "s1").mkdir(parents=True)
    for i in range(12):
        pixels = (rng.rand(24, 24, 3) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "imgs" / "s1" / f"{i}.jpg")
    users = [f"u{r}" for r in range(6)]
    rows += [f"{u},s1,{i}.jpg,{rng.randint(1, 6)}" for u in users for i in range(12)]
    (tmp_path / "annotation").mkdir()
    (tmp_path / "annotation" / "PARA-Images.csv").write_text("\n".join(rows) + "\n")
    info = tmp_path / "PARA-UserInfo.csv"
    info.write_text("userId,age,gender," + ",".join(f"personality-{t}" for t in "OCEAN")
                    + "\n" + "\n".join(f"{u},30,f," + ",".join(
                        f"{v:.3f}" for v in np.tanh(rng.randn(5))) for u in users) + "\n")
    held = tmp_path / "test.csv"
    held.write_text("userId\nu4\nu5\n")
    main(["table1", "--ratings", str(tmp_path), "--format", "para", "--personality",
          str(info), "--test-raters", str(held), "--backbone", "tiny_cnn", "--algorithms",
          "pa_iaa", "--n-iterations", "2", "--n-repeats", "1", "--n-support", "4",
          "--quiet"])
    assert "PA_IAA" in capsys.readouterr().out


def test_the_command_runs_as_a_module():
    # where the sklearn-piaa script is not on the PATH (an environment not activated)
    import subprocess
    import sys

    import sklearn_piaa

    done = subprocess.run([sys.executable, "-m", "sklearn_piaa", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sklearn_piaa.__version__ in done.stdout and "(torch 2." in done.stdout
    done = subprocess.run([sys.executable, "-m", "sklearn_piaa", "predict", "missing.pt", "x"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("sklearn-piaa: error:")


def test_help_version_and_usage_errors_import_no_heavy_library():
    # `sklearn-piaa --help` and a mistyped option took 7 s: the package's import, and the
    # command line's, brought in torch, scikit-learn (scipy.stats) and pandas first.
    import subprocess
    import sys

    code = """
import runpy, sys
for argv in (["--help"], ["predict", "--help"], ["predict", "--bogus"],
             ["meta-train", "d.csv", "-o", "p.pt", "--algorithm", "nope"],
             ["table1", "--algorithms", "nope"],
             ["demo", "--backbone", "resnet"],
             ["personalize", "p.pt", "r.csv", "-o", "u.pt", "--score-range", "5,1"]):
    sys.argv = ["sklearn-piaa", *argv]
    try:
        runpy.run_module("sklearn_piaa", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        print("exit", exc.code)
print(sorted(m for m in ("torch", "sklearn", "scipy", "pandas") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith("exit")] == ["exit 0"] * 2 + ["exit 2"] * 5
    assert "usage: sklearn-piaa predict" in done.stdout
    assert "invalid choice: 'nope'" in done.stderr and "--score-range" in done.stderr
    assert "argument --backbone: invalid choice: 'resnet' (choose from 'efficientnet_lite0', " \
        "'resnet18'" in done.stderr
    assert lines[-1] == "[]"


def test_the_parser_names_are_the_library_s():
    # The parser reads them from modules without torch: the same names as the classes'.
    from sklearn_piaa import _names, datasets
    from sklearn_piaa._cli_common import READERS
    from sklearn_piaa.datasets._table import DATA_SETS
    from sklearn_piaa.meta import ALGORITHMS
    from sklearn_piaa.nn.backbones import BACKBONES
    from sklearn_piaa.report import BASELINES, METHOD_LABELS, TASK_VECTOR_METHODS

    assert _names.ALGORITHM_NAMES == tuple(ALGORITHMS)
    assert _names.BACKBONE_NAMES == tuple(BACKBONES)
    assert list(_names.BASELINE_LABELS) == list(BASELINES)
    assert set(METHOD_LABELS) == set(ALGORITHMS) | set(BASELINES) | set(TASK_VECTOR_METHODS)
    _, sub = build_parser()
    algorithm = next(a for a in sub.choices["meta-train"]._actions if a.dest == "algorithm")
    assert algorithm.choices == list(ALGORITHMS)
    assert set(READERS) == {"table", *(d[1] for d in DATA_SETS)}
    for fmt, reader in READERS.items():
        assert reader is None if fmt == "table" else callable(getattr(datasets, reader))


def test_score_range_messages_spell_the_command_line_option(tmp_path, capsys):
    # "lie outside score_range=(0.0, 100.0)" and "pass score_range=(low, high)" gave a
    # command-line user Python's spelling only
    csv_path = ratings_folder(tmp_path)
    args = ["meta-train", str(csv_path), "-o", str(tmp_path / "p.pt"), "--backbone",
            "tiny_cnn", "--n-iterations", "1", "--support-size", "8", "--query-size", "4",
            "--quiet"]
    with pytest.raises(ValueError, match=r"lie outside score_range=\(2, 5\) \(--score-range "
                                         r"2,5 on the command line\): .*row [0-9]+ of X, "
                                         r"counting from 0\)"):
        main([*args, "--score-range", "2,5"])
    with pytest.raises(SystemExit):  # refused as it is read, by the option's name
        main([*args, "--score-range", "5,1"])
    assert ("--score-range: expected LOW,HIGH: two finite numbers, LOW below HIGH"
            in capsys.readouterr().err)
    lines = csv_path.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",99"  # a code for a missing rating
    csv_path.write_text("\n".join(lines))
    with pytest.warns(PIAAWarning, match=r"pass score_range=\(low, high\) of the rating scale "
                                         r"\(--score-range LOW,HIGH on the command line\)"):
        main(args)


@pytest.mark.parametrize("argv", [
    ["personalize", "p.pt", "r.csv", "-o", "u.pt", "--lr", "-1"],
    ["meta-train", "d.csv", "-o", "p.pt", "--inner-lr", "-0.1"],
    ["meta-train", "d.csv", "-o", "p.pt", "--outer-lr", "nan"],
    ["meta-train", "d.csv", "-o", "p.pt", "--inner-backbone-lr", "inf"],
    ["meta-train", "d.csv", "-o", "p.pt", "--finetune-lr", "-0.001"],
    ["demo", "--outer-lr", "-1"],
    ["table1", "--outer-lr", "-0.001"],
    ["table1", "--maml-outer-lr", "fast"],
    ["table1", "--test-fraction", "1.5"],
    ["evaluate", "p.pt", "r.csv", "--lr", "nan"],
])
def test_float_options_are_refused_by_name_as_they_are_read(argv, capsys):
    # `personalize --lr -1` ended in torch's "Invalid learning rate: -1.0", naming no
    # option, after the prior and the ratings were read
    parser, _ = build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(argv)
    assert exc.value.code == 2
    option = next(a for a in argv if a.startswith("--") and a not in ("--output",))
    assert f"argument {option}: expected a " in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["meta-train", "d.csv", "-o", "p.pt", "--n-iterations", "-3"],
    ["meta-train", "d.csv", "-o", "p.pt", "--tasks-per-batch", "0"],
    ["meta-train", "d.csv", "-o", "p.pt", "--support-size", "-1"],
    ["meta-train", "d.csv", "-o", "p.pt", "--query-size", "many"],
    ["meta-train", "d.csv", "-o", "p.pt", "--inner-steps", "-1"],
    ["meta-train", "d.csv", "-o", "p.pt", "--checkpoint-every", "0"],
    ["meta-train", "d.csv", "-o", "p.pt", "--finetune-epochs", "0"],
    ["meta-train", "d.csv", "-o", "p.pt", "--random-state", "-1"],
    ["personalize", "p.pt", "r.csv", "-o", "u.pt", "--epochs", "0"],
    ["personalize", "p.pt", "r.csv", "-o", "u.pt", "--random-state", str(2**32)],
    ["evaluate", "p.pt", "r.csv", "--n-support", "10", "-5"],
    ["evaluate", "p.pt", "r.csv", "--n-repeats", "0"],
    ["evaluate", "p.pt", "r.csv", "--n-jobs", "0"],
    ["evaluate", "p.pt", "r.csv", "--epochs", "0"],
    ["evaluate", "p.pt", "r.csv", "--batch-size", "-2"],
    ["demo", "--n-test-raters", "0"],
    ["demo", "--n-images", "-100"],
    ["table1", "--image-size", "0"],
    ["table1", "--n-iterations", "-1"],
])
def test_integer_options_are_refused_by_name_as_they_are_read(argv, capsys):
    # `--n-iterations -3` was refused by the estimator, naming n_iterations, after the
    # images were read (and embedded); `personalize --epochs 0` wrote the prior as a
    # personalized model and reported success
    parser, _ = build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(argv)
    assert exc.value.code == 2
    option = next(a for a in argv if a.startswith("--"))
    assert f"argument {option}: expected " in capsys.readouterr().err


def test_integer_options_take_what_the_estimator_takes():
    parser, _ = build_parser()
    args = parser.parse_args(["meta-train", "d.csv", "-o", "p.pt", "--n-iterations", "0",
                              "--inner-steps", "0", "--random-state", str(2**32 - 1)])
    assert (args.n_iterations, args.inner_steps, args.random_state) == (0, 0, 2**32 - 1)
    assert parser.parse_args(["evaluate", "p.pt", "r.csv", "--n-jobs", "-1"]).n_jobs == -1


def test_float_options_take_zero_learning_rates_as_the_estimator_does():
    parser, _ = build_parser()
    args = parser.parse_args(["meta-train", "d.csv", "-o", "p.pt", "--inner-lr", "0",
                              "--outer-lr", "1e-2"])
    assert (args.inner_lr, args.outer_lr) == (0.0, 0.01)
    assert parser.parse_args(["table1", "--test-fraction", "0.25"]).test_fraction == 0.25


@pytest.fixture
def ridge(tmp_path):
    """A saved ConsensusRidgeRegressor on tiny_cnn (no meta-training), and its table."""
    from sklearn_piaa import save_model
    from sklearn_piaa.baselines import ConsensusRidgeRegressor
    from sklearn_piaa.datasets import read_ratings

    csv_path = ratings_folder(tmp_path, n_images=16, n_raters=4)
    prior = tmp_path / "ridge.pt"
    save_model(ConsensusRidgeRegressor(backbone="tiny_cnn").fit(read_ratings(csv_path).tasks),
               prior)
    return prior, csv_path


def test_evaluate_draws_are_seeded_by_random_state(tmp_path, ridge):
    # evaluate dropped --random-state: its default 0 or a given seed no longer
    # seeded the draws, so two runs of one command gave different tables
    prior, csv_path = ridge

    def table(seed, name):
        out = tmp_path / name
        main(["evaluate", str(prior), str(csv_path), "--n-support", "5", "--n-repeats", "2",
              "--quiet", "--random-state", str(seed), "-o", str(out)])
        return out.read_text()

    first, again, other = table(3, "a.csv"), table(3, "b.csv"), table(4, "c.csv")
    assert first == again

    def seeds(text):
        return [row.rsplit(",", 1)[1] for row in text.splitlines()[1:]]

    assert seeds(first) != seeds(other)


def test_evaluate_takes_the_test_raters_score_range(tmp_path, ridge):
    # evaluate dropped --score-range: a scale the raters' scores leave was not
    # refused (nor used to map the prior's scores onto the raters' scale)
    prior, csv_path = ridge
    with pytest.raises(ValueError, match=r"4 test rater\(s\) have scores outside the given "
                                         r"score_range"):
        main(["evaluate", str(prior), str(csv_path), "--n-support", "5", "--n-repeats", "1",
              "--quiet", "--score-range", "1,3"])


def test_personalize_with_a_baseline_prior_takes_the_score_range(tmp_path, ridge):
    # personalize dropped --score-range for a baseline prior: the user's model
    # predicted on the training raters' scale, not the one given
    from sklearn_piaa import load_model

    prior, _ = ridge
    mine = tmp_path / "mine.csv"
    mine.write_text("image,score\n" + "\n".join(f"{i}.png,{10 + 20 * (i % 5)}"
                                                  for i in range(12)))
    user = tmp_path / "user.pt"
    main(["personalize", str(prior), str(mine), "-o", str(user), "--quiet",
          "--score-range", "0,100"])
    model = load_model(user)
    assert tuple(model.score_range_) == (0.0, 100.0)
    images = [str(tmp_path / f"{i}.png") for i in range(16)]
    python = load_model(prior).personalize(images[:12], [10.0 + 20 * (i % 5) for i in range(12)],
                                           score_range=(0, 100))
    np.testing.assert_allclose(model.predict(images), python.predict(images), rtol=1e-5)


def test_min_images_keeps_a_rater_with_exactly_that_many_images(tmp_path, capsys):
    # "fewer than N" became "N or fewer": raters with exactly --min-images images
    # were left out (here all of them, so the command failed)
    csv_path = ratings_folder(tmp_path, n_images=12, n_raters=3)
    with open(csv_path, "a") as f:
        f.write("\nlonely,0.png,3")
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--n-iterations", "1", "--support-size", "6", "--query-size", "3", "--quiet",
          "--min-images", "12"])
    out = capsys.readouterr().out
    assert "left out 1 rater with fewer than 12 images (--min-images): 'lonely'" in out
    assert "3 raters," in out and prior.exists()
