"""The command line as a script uses it: outputs never replace inputs, errors are lines."""

import errno
import os
import re
import shutil
import stat
import warnings

import numpy as np
import pytest
from conftest import CtrlC

from sklearn_piaa import PIAAWarning, _cli_common, load_model
from sklearn_piaa._io import atomic_write
from sklearn_piaa.cli import console, main

TRAIN = ["--backbone", "tiny_cnn", "--n-iterations", "2", "--support-size", "5",
         "--query-size", "3", "--quiet"]


def _ratings_table(tmp_path, image_files):
    """A ratings CSV of 4 raters (u0-u3) who rated every one of ``image_files``."""
    lines = ["rater,image,score"] + [f"u{u},{os.path.basename(p)},{1 + (i * (u + 2)) % 5}"
                                     for u in range(4) for i, p in enumerate(image_files)]
    table = tmp_path / "ratings.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


@pytest.fixture
def prior(tmp_path, image_files):
    table = _ratings_table(tmp_path, image_files)
    path = tmp_path / "prior.pt"
    main(["meta-train", str(table), "-o", str(path), *TRAIN])
    return path


def _mine(tmp_path, image_files, header="image,score", rows=None, name="mine.csv"):
    path = tmp_path / name
    rows = rows or [f"{os.path.basename(p)},{1 + i % 5}" for i, p in enumerate(image_files)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_an_output_that_is_one_of_the_images_read_is_refused(tmp_path, image_files, prior):
    # Only the paths on the command line were checked: -o could replace a photo the
    # table or the folder named.
    photo = image_files[3]
    before = open(photo, "rb").read()
    with pytest.raises(SystemExit, match="is the input file"):
        main(["predict", str(prior), str(tmp_path), "-o", photo, "--quiet"])
    with pytest.raises(SystemExit, match="is the input file"):
        main(["personalize", str(prior), str(_mine(tmp_path, image_files)), "-o", photo,
              "--quiet"])
    with pytest.raises(SystemExit, match="is the input file"):
        main(["meta-train", str(tmp_path / "ratings.csv"), "-o", photo, *TRAIN])
    assert open(photo, "rb").read() == before
    for command in (["meta-train", str(tmp_path / "ratings.csv"), *TRAIN],
                    ["evaluate", str(prior), str(tmp_path / "ratings.csv"), "--quiet"]):
        with pytest.raises(SystemExit, match="-o -: this command writes a file"):
            main([*command, "-o", "-"])
    assert not os.path.exists("-")


def test_an_output_name_no_file_can_have_is_refused_before_the_work(tmp_path, image_files,
                                                                     monkeypatch):
    # "-o newdir/" and "-o ''" passed the early check: meta-training ran to its end, and
    # the prior was lost to "[Errno 20] Not a directory: '.piaa-....tmp' -> 'newdir/'";
    # so was a link into a missing folder, whose own folder was the one checked
    from sklearn_piaa import MetaAestheticRegressor

    table = tmp_path / "ratings.csv"
    table.write_text("rater,image,score\n" + "".join(
        f"u{u},{os.path.basename(p)},{1 + i % 5}\n" for u in range(2)
        for i, p in enumerate(image_files)))
    monkeypatch.chdir(tmp_path)
    link = tmp_path / "lnk.pt"
    link.symlink_to(tmp_path / "gone" / "target.pt")
    monkeypatch.setattr(MetaAestheticRegressor, "fit", _never)
    for name, said in (("newdir/", "-o 'newdir/' ends with '/', as a folder's name does"),
                       ("prior.pt/", "ends with '/'"), ("", "-o '' is empty"),
                       (str(link), "folder '.*gone' does not exist")):
        with pytest.raises(SystemExit, match=said):
            main(["meta-train", str(table), "-o", name, *TRAIN])
    for name, error in (("newdir/", IsADirectoryError), ("", FileNotFoundError)):
        with pytest.raises(error, match="give a file name to write"):  # save_model's
            atomic_write(name, lambda fh: fh.write(b"model"))
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["ratings.csv", "lnk.pt", *map(os.path.basename, image_files)])
    assert not os.path.exists(tmp_path.parent / "newdir")


def _never(*args, **kwargs):
    raise AssertionError("the work ran")


def test_a_table_without_the_rater_column_is_not_merged_silently(tmp_path, image_files, prior):
    # Two people's ratings under a "user" column were averaged into one rater "you".
    rows = [f"{who},{os.path.basename(p)},{1 + (i * k) % 5}" for who, k in (("ann", 2),
                                                                              ("bob", 3))
            for i, p in enumerate(image_files)]
    two = _mine(tmp_path, image_files, header="user,image,score", rows=rows, name="two.csv")
    out = str(tmp_path / "me.pt")
    with pytest.raises(SystemExit, match=r"no 'rater' column.*12 images appear.*'user'.*"
                                         "--rater-col"):
        main(["personalize", str(prior), str(two), "-o", out, "--quiet"])
    with pytest.raises(SystemExit, match="--rater ann names a rater, but .* no 'rater' column"):
        main(["personalize", str(prior), str(_mine(tmp_path, image_files)), "-o", out,
              "--rater", "ann", "--quiet"])
    main(["personalize", str(prior), str(two), "-o", out, "--rater-col", "user", "--rater",
          "ann", "--quiet"])
    assert os.path.isfile(out)


def test_predict_skips_hidden_files_and_fails_when_nothing_is_readable(tmp_path, prior,
                                                                       capsys):
    folder = tmp_path / "photos"
    (folder / ".thumbnails").mkdir(parents=True)
    shutil.copy(tmp_path / "img_00.png", folder / "a.png")
    (folder / "._a.png").write_bytes(b"\0\5\26\7 macOS resource fork")
    shutil.copy(tmp_path / "img_01.jpg", folder / ".thumbnails" / "a.jpg")
    out = tmp_path / "scores.csv"
    main(["predict", str(prior), str(folder), "-o", str(out), "--quiet"])
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith(str(folder / "a.png") + ",")
    assert np.isfinite(float(lines[1].split(",")[1]))
    out.unlink()
    (folder / "b.png").write_bytes(b"not an image")
    (folder / "a.png").unlink()
    with pytest.warns(UserWarning, match="could not be read"):
        with pytest.raises(SystemExit, match="none of the 1 image could be read"):
            main(["predict", str(prior), str(folder), "-o", str(out), "--quiet"])
    assert not out.exists()


def test_predict_names_the_files_of_a_folder_that_are_not_images(tmp_path, prior):
    # A folder's .heic photo and notes.txt were left out without a word: "1 image scored"
    folder = tmp_path / "photos"
    (folder / "notes").mkdir(parents=True)
    shutil.copy(tmp_path / "img_00.png", folder / "a.png")
    for name in ("e.heic", "notes/notes.txt", ".DS_Store"):
        (folder / name).write_bytes(b"not a photo")
    out = tmp_path / "scores.csv"
    with pytest.warns(PIAAWarning) as caught:
        main(["predict", str(prior), str(folder), "-o", str(out), "--quiet"])
    said = [str(w.message) for w in caught if "left out" in str(w.message)]
    assert said == [f"left out 2 files that are not images of a supported type (.heic, "
                    f".txt): {folder / 'e.heic'}, {folder / 'notes' / 'notes.txt'}; this "
                    "Pillow cannot read HEIC/HEIF photos: convert them to JPEG."]
    assert len(out.read_text().splitlines()) == 2
    (folder / "a.png").unlink()
    with pytest.raises(SystemExit, match=r"no image files found in .*photos; left out 2 "
                                         r"files .* convert them to JPEG\.$"):
        main(["predict", str(prior), str(folder), "-o", str(out), "--quiet"])
    (folder / "e.heic").unlink()
    (folder / "notes" / "notes.txt").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a folder of images only, and hidden files: silent
        shutil.copy(tmp_path / "img_00.png", folder / "a.png")
        main(["predict", str(prior), str(folder), "-o", str(out), "--quiet"])


@pytest.fixture
def unreadable(monkeypatch):
    """``unreadable(*folders)`` makes the folders unlistable: ``chmod 000`` where that
    binds, else (root reads anything) os.walk's listing of them fails as it would."""
    denied, modes = set(), {}
    listing = os.scandir

    def scandir(path="."):
        if os.fspath(path) in denied:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return listing(path)

    def make(*folders):
        for folder in map(str, folders):
            if hasattr(os, "geteuid") and os.geteuid() != 0:
                modes[folder] = stat.S_IMODE(os.stat(folder).st_mode)
                os.chmod(folder, 0)
            else:
                denied.add(folder)
                monkeypatch.setattr(os, "scandir", scandir)

    yield make
    for folder, mode in modes.items():  # else tmp_path's cleanup cannot remove them
        os.chmod(folder, mode)


def test_predict_names_the_subfolders_it_cannot_read(tmp_path, image_files, unreadable):
    # os.walk skipped a subfolder it could not list without a word: its photos were
    # left out of the scores, with exit status 0.
    folder = tmp_path / "perm"
    subs = [folder / f"sub{i}" for i in range(7)]
    for sub in subs:
        sub.mkdir(parents=True)
        shutil.copy(tmp_path / "img_00.png", sub / "x.png")
    shutil.copy(tmp_path / "img_00.png", folder / "ok.png")
    unreadable(*subs)
    with pytest.warns(PIAAWarning) as caught:
        assert _cli_common.image_files([str(folder)]) == [str(folder / "ok.png")]
    assert [str(w.message) for w in caught] == [
        "could not read 7 subfolders (permission denied), so any images in them were "
        f"left out: {', '.join(map(str, subs[:5]))}, ... (7 in all)."]
    (folder / "ok.png").unlink()
    with pytest.raises(SystemExit, match=r"no image files found in .*perm; could not read 7 "
                                         r"subfolders \(permission denied\)"):
        _cli_common.image_files([str(folder)])


def test_predict_on_a_folder_it_cannot_read_says_permission_denied(tmp_path, image_files,
                                                                   unreadable, capsys):
    # "no image files found in perm2", as if the folder held no photos
    folder = tmp_path / "perm2"
    folder.mkdir()
    shutil.copy(tmp_path / "img_00.png", folder / "x.png")
    unreadable(folder)
    with pytest.raises(PermissionError, match="cannot read the folder .*perm2: permission "
                                              "denied; make it readable"):
        main(["predict", str(tmp_path / "none.pt"), str(folder)])
    assert console(["predict", str(tmp_path / "none.pt"), str(folder)]) == 1
    assert capsys.readouterr().err == (f"sklearn-piaa: error: cannot read the folder {folder}: "
                                       "permission denied; make it readable (chmod u+rx) or "
                                       "give the images another way.\n")


@pytest.mark.parametrize("name, says", [("scores.json", "JSON"),
                                         ("scores.TSV", "tab-separated values"),
                                         ("scores.xlsx", "an Excel workbook"),
                                         ("scores.parquet", "Parquet"),
                                         ("other.pt", "a model file")])
def test_an_output_name_of_another_format_than_csv_is_refused(tmp_path, image_files, name,
                                                              says):
    # predict -o scores.json wrote a CSV under that name, without a word
    out = tmp_path / name
    ext = os.path.splitext(name)[1]
    with pytest.raises(SystemExit, match=f"-o .*{name}: the scores are written as CSV "
                                         rf"\(comma-separated text\), but the name ends in "
                                         rf"\{ext}, which says {says}; give a name ending "
                                         r"in \.csv\.$"):
        main(["predict", str(tmp_path / "none.pt"), image_files[0], "-o", str(out)])
    with pytest.raises(SystemExit, match=f"{name}: the per-rater table is written as CSV"):
        main(["evaluate", str(tmp_path / "none.pt"), str(tmp_path / "none.csv"), "-o",
              str(out)])
    assert not out.exists()


@pytest.mark.parametrize("name", ["scores.png", "table.JPG"])
def test_an_image_name_for_a_table_is_refused(tmp_path, image_files, prior, name):
    # predict -o imgs/scores.png wrote CSV there: the next folder search read it as a
    # photo (a NaN row and a warning, or "-o is the input file" on the rerun)
    out = tmp_path / name
    with pytest.raises(SystemExit, match=f"{name}: the scores are written as CSV .*which "
                                         "says an image; give a name ending in .csv"):
        main(["predict", str(prior), str(tmp_path), "-o", str(out), "--quiet"])
    with pytest.raises(SystemExit, match=f"{name}: the per-rater table is written as CSV"):
        main(["evaluate", str(prior), str(tmp_path / "ratings.csv"), "-o", str(out),
              "--quiet"])
    assert not out.exists()


def test_an_empty_output_name_is_refused_by_evaluate_too(tmp_path):
    # evaluate -o '' (an empty shell variable) ran the evaluation and wrote no table,
    # exit 0: "" was taken for no -o
    with pytest.raises(SystemExit, match="-o '' is empty; give a file name"):
        main(["evaluate", str(tmp_path / "none.pt"), str(tmp_path / "none.csv"), "-o", ""])


@pytest.mark.parametrize("name", ["scores.csv", "scores.txt", "scores", "scores.CSV"])
def test_csv_and_text_output_names_are_taken(tmp_path, image_files, name):
    # past the check of the name: the missing model is what stops the command
    with pytest.raises(FileNotFoundError, match="model file not found"):
        main(["predict", str(tmp_path / "none.pt"), image_files[0], "-o",
              str(tmp_path / name)])


EVALUATE_HEADER = "rater,repeat,n_support,n_query,srocc_prior,srocc_personalized,seed"


def _data(tmp_path, image_files):
    """A ratings table of ``image_files`` for evaluate, which reads it before the model."""
    path = tmp_path / "data.csv"
    path.write_text("rater,image,score\n" + "".join(
        f"u{i % 2},{os.path.basename(p)},{1 + i % 5}\n" for i, p in enumerate(image_files)))
    return str(path)


@pytest.mark.parametrize("content, looks", [
    (b"rater,image,score\nann,a.jpg,3\n", "its first line is 'rater,image,score', not "),
    (b"image,score,comment\na.jpg,3,nice\n", "its first line is 'image,score,comment'"),
    (b"image,score\r\na.jpg,3\r\n", r"its first line is 'image,score\\r'"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", r"is not a text file \(an image, a model"),
    # one person's ratings (personalize's input): predict wrote this header, replacing it
    (b"image,score\na.jpg,3\n", "its first line is 'image,score', not "),
])
def test_an_output_over_a_file_of_other_content_is_refused(tmp_path, image_files, content,
                                                           looks):
    # predict -o ratings.csv (for -o scores.csv) replaced the ratings without a word
    out = tmp_path / "ratings.csv"
    out.write_bytes(content)
    for command, what in ((["predict", str(tmp_path / "none.pt"), image_files[0]],
                           "the scores"),
                          (["evaluate", str(tmp_path / "none.pt"),
                            _data(tmp_path, image_files)], "the per-rater table")):
        with pytest.raises(SystemExit, match=rf"^-o {out}: the file exists and .*{looks}.*; "
                                             rf"writing {what} would replace it\. Remove the "
                                             r"file first, or choose another name\.$"):
            main([*command, "-o", str(out)])
    assert out.read_bytes() == content
    # each command's output is the other's "other file"
    out.write_text(EVALUATE_HEADER + "\nann,0,3,9,0.5,0.6,1\n")
    with pytest.raises(SystemExit, match=rf"first line is '{EVALUATE_HEADER}', not "
                                         "'image,predicted_score'"):
        main(["predict", str(tmp_path / "none.pt"), image_files[0], "-o", str(out)])
    out.write_text("image,score\na.jpg,3\n")
    with pytest.raises(SystemExit, match=f"not an earlier output of evaluate: its first line "
                                         f"is 'image,score', not '{EVALUATE_HEADER}'"):
        main(["evaluate", str(tmp_path / "none.pt"), _data(tmp_path, image_files), "-o",
              str(out)])


def test_an_output_that_cannot_be_read_to_tell_is_refused(tmp_path, image_files,
                                                          monkeypatch):
    from sklearn_piaa import cli

    out = tmp_path / "scores.csv"
    out.write_text("image,predicted_score\n")

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(cli, "open", denied, raising=False)  # root reads any file
    with pytest.raises(SystemExit, match=r"the file exists and cannot be read to tell "
                                         r"whether it is an earlier output of predict "
                                         r"\(Permission denied\); writing the scores"):
        main(["predict", str(tmp_path / "none.pt"), image_files[0], "-o", str(out)])


@pytest.mark.parametrize("command, content", [
    ("predict", ""), ("predict", "image,predicted_score\n"),
    ("predict", "image,predicted_score\na.jpg,3\n"),
    ("evaluate", ""), ("evaluate", EVALUATE_HEADER + "\nann,0,3,9,0.5,0.6,1\n"),
])
def test_an_empty_file_or_an_earlier_output_is_taken(tmp_path, image_files, command,
                                                     content):
    out = tmp_path / "out.csv"
    out.write_text(content)
    inputs = image_files[0] if command == "predict" else _data(tmp_path, image_files)
    # past the check of the output: the missing model is what stops the command
    with pytest.raises(FileNotFoundError, match="model file not found"):
        main([command, str(tmp_path / "none.pt"), inputs, "-o", str(out)])
    assert out.read_text() == content


def test_rerunning_predict_and_evaluate_replaces_their_output(tmp_path, image_files, prior):
    scores, table = tmp_path / "scores.csv", tmp_path / "table.csv"
    for _ in range(2):
        main(["predict", str(prior), *image_files[:2], "-o", str(scores), "--quiet"])
        main(["evaluate", str(prior), str(tmp_path / "ratings.csv"), "--n-support", "3",
              "--n-repeats", "1", "-o", str(table), "--quiet"])
    assert scores.read_text().splitlines()[0] == "image,predicted_score"
    assert len(scores.read_text().splitlines()) == 3
    assert table.read_text().splitlines()[0] == EVALUATE_HEADER


def test_personalize_does_not_write_over_a_meta_trained_prior(tmp_path, image_files, prior):
    # "-o other_prior.pt" replaced another prior, which took long to train, without a word
    other = tmp_path / "other_prior.pt"
    shutil.copyfile(prior, other)
    before = other.read_bytes()
    mine = str(_mine(tmp_path, image_files))
    with pytest.raises(SystemExit, match=re.escape(
            f"-o {other}: the file exists and holds a meta-trained prior; writing the "
            "model would replace it.")):
        main(["personalize", str(prior), mine, "-o", str(other), "--quiet"])
    assert other.read_bytes() == before
    # an earlier personalized model is replaced, as rerunning the command does
    me = tmp_path / "me.pt"
    for _ in range(2):
        main(["personalize", str(prior), mine, "-o", str(me), "--quiet"])
    assert load_model(me).module_ is not None
    # and meta-train replaces an earlier prior, as before
    main(["meta-train", str(tmp_path / "ratings.csv"), "-o", str(other), *TRAIN])


def test_image_urls_are_refused_as_urls_by_the_commands(tmp_path, capsys):
    # "no such file or folder: https://...", and a table's URL was "missing under
    # <folder>: https:/example.com/57_start.jpg"
    url = "https://example.com/57_start.jpg"
    assert console(["predict", str(tmp_path / "prior.pt"), url]) == 1
    table = tmp_path / "ratings.csv"
    table.write_text(f"rater,image,score\na,{url},3\n")
    assert console(["meta-train", str(table), "-o", str(tmp_path / "p.pt"),
                    "--on-error", "skip"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"sklearn-piaa: error: {url}: URLs are not supported: download the "
                   "images and give their local paths.",
                   f"sklearn-piaa: error: {table}: the image column 'image' holds 1 URL(s), "
                   f"at line 2: {url}. URLs are not supported: download the images and give "
                   "their local paths."]


def test_writing_goes_through_a_link_and_refuses_a_read_only_file(tmp_path, monkeypatch):
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    atomic_write(link, lambda fh: fh.write(b"new\n"))
    assert link.is_symlink() and target.read_text() == "new\n"
    # root may write anything, as ">" may; for everyone else os.access says no.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="read-only"):
        atomic_write(target, lambda fh: fh.write(b"newer\n"))
    assert target.read_text() == "new\n"


def test_a_full_disk_is_one_line_naming_the_output(tmp_path, image_files, prior,
                                                  monkeypatch, capsys):
    # predict -o said "error: [Errno 28] No space left on device", naming no file;
    # personalize -o printed the traceback of torch's "RuntimeError: [enforce fail at
    # inline_container.cc:672] . unexpected pos 7232 vs 7152".
    import torch

    def no_room(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def torchs(obj, fh):
        try:
            no_room()
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected "
                               "pos 7232 vs 7152")

    said = "failed: no space left on device (disk full?); nothing was written: free some " \
           "space or choose another folder."
    out, me = tmp_path / "scores.csv", tmp_path / "me.pt"
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", no_room)
        assert console(["predict", str(prior), *image_files[:2], "-o", str(out),
                        "--quiet"]) == 1
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", torchs)
        assert console(["personalize", str(prior), str(_mine(tmp_path, image_files)), "-o",
                        str(me), "--quiet"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "warning:" not in line]
    assert errors == [f"sklearn-piaa: error: writing {str(out)!r} {said}",
                      f"sklearn-piaa: error: writing {str(me)!r} {said}"]
    assert not out.exists() and not me.exists()


def test_a_trained_model_the_output_cannot_take_is_kept_in_a_spare_file(
        tmp_path, image_files, prior, monkeypatch, capsys):
    # -o is checked before the work; a disk filled (or a folder removed) meanwhile
    # failed the save at the end, and hours of meta-training went with the process
    import tempfile

    import sklearn_piaa._persistence as persistence

    save = persistence.save_model
    out, me = tmp_path / "out" / "prior.pt", tmp_path / "out" / "me.pt"

    def full(model, path):
        if os.path.dirname(os.fspath(path)) == str(out.parent):
            raise OSError(errno.ENOSPC, f"writing {os.fspath(path)!r} failed: no space left")
        save(model, path)

    spares = tmp_path / "spares"
    spares.mkdir()
    out.parent.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spares))
    monkeypatch.setattr(persistence, "save_model", full)
    assert console(["meta-train", str(tmp_path / "ratings.csv"), "-o", str(out),
                    *TRAIN]) == 1
    assert console(["personalize", str(prior), str(_mine(tmp_path, image_files)), "-o",
                    str(me), "--quiet"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    kept = sorted(spares.iterdir())
    assert [p.name.rsplit("-", 1)[0] for p in kept] == ["sklearn-piaa-personalized-model",
                                                        "sklearn-piaa-prior"]
    assert errors[0].endswith(f"no space left The prior was saved to {kept[1]} instead: "
                              "move it where it belongs.")
    assert f"The personalized model was saved to {kept[0]} instead" in errors[1]
    assert type(load_model(kept[1])).__name__ == "MetaAestheticRegressor"
    assert type(load_model(kept[0])).__name__ == "PersonalizedNet"
    assert not out.exists() and not me.exists()


def test_a_wrong_model_file_is_named_for_what_it_is(tmp_path, image_files):
    with pytest.raises(ValueError, match="is a folder, not a model file"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="not a torch archive"):
        load_model(image_files[1])


def test_the_command_reports_divergence_and_interrupts_in_one_line(tmp_path, prior, capsys,
                                                                   monkeypatch):
    import sklearn_piaa.cli as cli
    monkeypatch.delenv("SKLEARN_PIAA_TRACEBACK", raising=False)
    mine = _mine(tmp_path, [str(tmp_path / f"img_{i:02d}.{'jpg' if i % 2 else 'png'}")
                            for i in range(12)])
    assert console(["personalize", str(prior), str(mine), "-o", str(tmp_path / "u.pt"),
                    "--lr", "1e30", "--quiet"]) == 1
    err = capsys.readouterr().err
    # the advice named lr and max_epochs only, Python's parameters
    assert "fine-tuning diverged" in err and "--lr on the command line" in err

    def interrupted(args, out=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_predict", interrupted)
    assert console(["predict", str(prior), str(tmp_path)]) == 130
    assert capsys.readouterr().err == "sklearn-piaa: interrupted; nothing was written.\n"
    # meta-training with checkpoints wrote some: the message said nothing was written
    monkeypatch.setattr(cli, "run_meta_train", interrupted)
    assert console(["meta-train", str(tmp_path / "ratings.csv"), "-o", str(tmp_path / "p.pt"),
                    "--checkpoint-dir", str(tmp_path / "runs")]) == 130
    err = capsys.readouterr().err
    assert str(tmp_path / "runs") in err and "resumes" in err
    # argparse's abbreviation of the option: "nothing was written", a checkpoint kept
    assert console(["meta-train", str(tmp_path / "ratings.csv"), "-o", str(tmp_path / "p.pt"),
                    "--checkpoint-d", str(tmp_path / "runs2")]) == 130
    err = capsys.readouterr().err
    assert str(tmp_path / "runs2") in err and "resumes" in err


def test_evaluate_does_not_write_over_a_photo_of_the_data(tmp_path, image_files, prior):
    photo = image_files[5]
    before = open(photo, "rb").read()
    with pytest.raises(SystemExit, match="is the input file"):
        main(["evaluate", str(prior), str(tmp_path / "ratings.csv"), "--n-support", "3",
              "--n-repeats", "1", "-o", photo, "--quiet"])
    assert open(photo, "rb").read() == before


def test_evaluate_names_skipped_raters_once_and_leaves_out_sizes_no_rater_reaches(
        tmp_path, image_files, prior, capsys):
    # At the default --n-support 10 100 on raters of 55 images: a warning listing every
    # rater, a row "100  nan ± nan (n=0)", then the same raters again under "skipped".
    names = [os.path.basename(p) for p in image_files]
    rows = [f"u{u},{name},{1 + (i * (u + 2)) % 5}" for u in range(4)
            for i, name in enumerate(names[:3] if u == 3 else names)]
    table = tmp_path / "small.csv"
    table.write_text("rater,image,score\n" + "\n".join(rows) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["evaluate", str(prior), str(table), "--n-support", "2", "20", "--n-repeats",
              "1", "--quiet"])
    out = capsys.readouterr().out
    assert "nan" not in out and out.count("'u3'") == 1
    assert "skipped at 2 images (too few images): 'u3' (3)" in out
    assert "left out n_support=20: no rater has enough images (the most any has: 12)" in out
    warned = [str(w.message) for w in caught]
    assert warned and not [w for w in warned if "skipped" in w or "left out" in w]
    assert any("among the prior's 4 training raters" in w for w in warned)  # others stay


def test_evaluate_leaves_out_the_skip_warnings_by_category_not_by_their_words(
        tmp_path, image_files, prior, monkeypatch):
    # The command told them by a pattern of their text: a rewording would have shown
    # them twice again, and no test would have noticed.
    from sklearn_piaa import PIAAWarning, evaluation
    from sklearn_piaa._warnings import SkippedWarning

    evaluate = evaluation.evaluate_personalization

    def reworded(*args, **kwargs):
        warnings.warn("some raters were passed over", SkippedWarning)
        warnings.warn("another matter", PIAAWarning)
        return evaluate(*args, **kwargs)

    # the command imports it from there as it runs
    monkeypatch.setattr(evaluation, "evaluate_personalization", reworded)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["evaluate", str(prior), str(tmp_path / "ratings.csv"), "--n-support", "3",
              "--n-repeats", "1", "--quiet"])
    warned = [str(w.message) for w in caught]
    assert "another matter" in warned and "some raters were passed over" not in warned


def test_personalize_colours_the_epoch_table_only_on_a_terminal(tmp_path, image_files,
                                                                prior, capsys, monkeypatch):
    # skorch's table coloured each epoch's best loss with ANSI codes wherever stdout
    # went: "sklearn-piaa personalize ... > log.txt" wrote ESC[36m into the file.
    import io
    import sys

    command = ["personalize", str(prior), str(_mine(tmp_path, image_files)), "-o",
               str(tmp_path / "u.pt"), "--epochs", "3"]
    monkeypatch.delenv("NO_COLOR", raising=False)
    main(command)
    out = capsys.readouterr().out
    assert "train_loss" in out and "\x1b[" not in out

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for no_color, coloured in (("", True), ("1", False)):
        monkeypatch.setenv("NO_COLOR", no_color)
        monkeypatch.setattr(sys, "stdout", Terminal())
        main(command)
        assert ("\x1b[36m" in sys.stdout.getvalue()) is coloured


def test_personalize_says_what_the_epoch_tables_loss_is_in_score_points(tmp_path,
                                                                        image_files,
                                                                        prior, capsys):
    # "train_loss 1.83" said nothing on a rater's scale: on a 0-500 slider it was an error
    # of about 170 points (the loss's unit is a quarter of the score range).
    import re

    command = ["personalize", str(prior), str(_mine(tmp_path, image_files)), "-o",
               str(tmp_path / "u.pt"), "--epochs", "3"]
    main(command)
    out = capsys.readouterr().out
    last = float(re.findall(r"^\s+3\s+([0-9.]+)", out, re.M)[-1])
    said = re.search(r"train_loss is the squared error in units of 1 score point \(a "
                     r"quarter of the score range\): the last epoch's ([0-9.]+) is a "
                     r"root-mean-square error of about ([0-9.]+) points", out)
    assert said and float(said.group(1)) == pytest.approx(last, rel=1e-3)
    assert float(said.group(2)) == pytest.approx(last ** 0.5, rel=1e-2)
    main(command + ["--quiet"])
    assert "train_loss" not in capsys.readouterr().out


def test_meta_train_says_what_its_progress_bars_loss_is_in_score_points(tmp_path, prior,
                                                                         capsys):
    import re

    main(["meta-train", str(tmp_path / "ratings.csv"), "-o", str(tmp_path / "p2.pt"),
          *[a for a in TRAIN if a != "--quiet"], "--n-iterations", "12"])
    out = capsys.readouterr().out
    said = re.search(r"query_mse is the squared error in units of 1 score point \(a quarter "
                     r"of the score range\): the last 10 iterations' mean ([0-9.]+) is a "
                     r"root-mean-square error of about ([0-9.]+) points", out)
    assert said
    history = load_model(tmp_path / "p2.pt").history_
    assert float(said.group(1)) == pytest.approx(np.mean(history[-10:]), rel=1e-3)
    assert float(said.group(2)) == pytest.approx(float(said.group(1)) ** 0.5, rel=1e-2)


def test_an_interrupted_fine_tuning_is_no_divergence_and_is_not_saved(tmp_path, image_files,
                                                                     prior, monkeypatch,
                                                                     capsys):
    # skorch ends fit quietly on Ctrl-C; the unfinished epoch has no loss, which the
    # divergence check read as NaN, and the command saved the half-trained net.
    from sklearn_piaa import MetaAestheticRegressor
    meta = load_model(prior)
    with pytest.raises(KeyboardInterrupt):  # not a net returned as if fine-tuned
        meta.personalize(image_files, np.arange(12) % 5 + 1.0, callbacks=[CtrlC()])
    original = MetaAestheticRegressor.personalize
    monkeypatch.setattr(MetaAestheticRegressor, "personalize",
                        lambda self, X, y, **kw: original(self, X, y, callbacks=[CtrlC()],
                                                          **kw))
    monkeypatch.delenv("SKLEARN_PIAA_TRACEBACK", raising=False)
    out = tmp_path / "u.pt"
    assert console(["personalize", str(prior), str(_mine(tmp_path, image_files)), "-o",
                    str(out), "--quiet"]) == 130
    assert not out.exists() and "interrupted" in capsys.readouterr().err


def test_table1_with_a_randomly_initialized_backbone_repeats_itself(capsys):
    # tiny_cnn was built unseeded: every run embedded with another network
    args = ["table1", "--n-images", "60", "--n-raters", "8", "--images-per-rater", "30",
            "--n-iterations", "2", "--n-repeats", "1", "--backbone", "tiny_cnn",
            "--image-size", "32", "--n-support", "5", "--algorithms", "none", "--quiet"]
    tables = []
    for _ in range(2):
        main(args)
        tables.append([line for line in capsys.readouterr().out.splitlines()
                       if line.startswith("none")])  # its row; timings differ
    assert tables[0] == tables[1] and len(tables[0]) == 1


def test_demo_and_table1_refuse_splits_without_training_or_test_raters(capsys):
    with pytest.raises(ValueError, match="--n-test-raters 12 must be at least 1 and below "
                                         "--n-raters 10"):
        main(["demo", "--n-images", "60", "--n-raters", "10", "--images-per-rater", "20",
              "--image-size", "32", "--backbone", "tiny_cnn", "--quiet"])
    with pytest.raises(SystemExit):  # refused as it is read, before the benchmark is made
        main(["table1", "--n-images", "60", "--n-raters", "8", "--images-per-rater", "30",
              "--test-fraction", "1.0", "--backbone", "tiny_cnn", "--image-size", "32",
              "--quiet"])
    assert ("argument --test-fraction: expected a fraction between 0 and 1"
            in capsys.readouterr().err)
    # the benchmark's own checks named images_per_rater=, image_size=
    for command in ("demo", "table1"):
        with pytest.raises(ValueError, match="--images-per-rater 70 exceeds --n-images 60"):
            main([command, "--n-images", "60", "--n-raters", "8", "--images-per-rater", "70",
                  "--image-size", "32", "--backbone", "tiny_cnn", "--quiet"])
        with pytest.raises(SystemExit):
            main([command, "--image-size", "8", "--backbone", "tiny_cnn", "--quiet"])
        assert ("argument --image-size: expected an integer of at least 16, got 8"
                in capsys.readouterr().err)


def test_attributes_of_a_thin_panorama(tmp_path):
    from PIL import Image

    from sklearn_piaa.datasets import measure_attributes
    path = tmp_path / "pano.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (500, 2, 3)).astype(np.uint8)
                    ).save(path)
    values, names = measure_attributes([str(path)])
    assert values.shape == (1, len(names)) and np.isfinite(values).all()


@pytest.mark.filterwarnings("ignore:2 rater\\(s\\) are scored on fewer")
def test_an_interrupt_before_the_first_epoch_is_not_a_fine_tuned_net(tmp_path, image_files,
                                                                     prior, monkeypatch,
                                                                     capsys):
    # Ctrl-C while the rater's images were embedded: skorch returned the prior's copy
    # untrained, and the command saved it as personalized (exit 0), evaluate scored it.
    from sklearn_piaa import TaskSet, _features, evaluate_personalization

    monkeypatch.delenv("SKLEARN_PIAA_TRACEBACK", raising=False)

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_features.ImageEmbedder, "_embed_batch", interrupted)
    out = tmp_path / "u.pt"
    assert console(["personalize", str(prior), str(_mine(tmp_path, image_files)), "-o",
                    str(out), "--quiet"]) == 130
    assert not out.exists() and "interrupted" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt):
        evaluate_personalization(load_model(prior), TaskSet(
            image_files, np.arange(12) % 5 + 1.0, np.repeat(["a", "b"], 6)), n_support=3,
            n_repeats=1)


def test_test_raters_from_a_file_are_held_out(tmp_path, image_files, capsys):
    # Only FLICKR-AES defined test raters: a PARA or AADB folder (or any table) was
    # meta-trained on every rater, and evaluate scored raters the prior had seen.
    table = _ratings_table(tmp_path, image_files)
    held = tmp_path / "held_out.csv"
    held.write_text("fold,rater\n1,u3\n")
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(table), "-o", str(prior), "--test-raters", str(held), *TRAIN])
    assert "3 raters" in capsys.readouterr().out
    assert load_model(prior).raters_ == ["u0", "u1", "u2"]
    out = tmp_path / "scores.csv"
    main(["evaluate", str(prior), str(table), "--test-raters", str(held), "--n-support", "3",
          "--n-repeats", "1", "-o", str(out), "--quiet"])
    assert {line.split(",")[0] for line in out.read_text().splitlines()[1:]} == {"u3"}
    held.write_text("fold,name\n1,u3\n")
    with pytest.raises(SystemExit, match=r"--test-raters: .*held_out\.csv: expected a header"):
        main(["meta-train", str(table), "-o", str(prior), "--test-raters", str(held), *TRAIN])


@pytest.mark.parametrize("text", ["u2\nu3\n", "rater\nu2\nu3\n", "fold\tworker\n1\tu2\n2\tu3\n",
                                  "fold worker\n1 u2\n2 u3\n"],
                         ids=["ids-only", "header", "tabs", "spaces"])
def test_a_test_raters_file_in_any_common_layout(tmp_path, text):
    # A list of ids lost its first id to a header; tab- and space-separated files failed.
    from sklearn_piaa._cli_common import read_rater_ids

    path = tmp_path / "ids.txt"
    path.write_text(text)
    assert read_rater_ids(str(path)) == ["u2", "u3"]


@pytest.mark.parametrize("text", ["rater\nJohn Smith\nAnn  Lee \n",
                                  'rater\n"John Smith"\n"Ann  Lee"\n',
                                  '"John Smith"\n"Ann  Lee"\n',
                                  'fold rater\n1 "John Smith"\n2 "Ann  Lee"\n'])
def test_test_raters_with_spaces_in_their_ids(tmp_path, text):
    # "John Smith" under the header "rater" was split in two: "line 2: 2 field(s) but
    # the header has 1 ... (row names, as R's write.table writes them?)"
    from sklearn_piaa._cli_common import read_rater_ids

    path = tmp_path / "ids.txt"
    path.write_text(text)
    assert read_rater_ids(str(path)) == ["John Smith", "Ann  Lee"]


@pytest.mark.parametrize("text, message", [
    ("John Smith\nAnn Lee\n", r"found \['John', 'Smith'\] \(ids with spaces: start the file "
                               r"with the line 'rater', or quote each id\)\.$"),
    ("rater;fold\nu1;1\n", r"its header 'rater;fold' is separated by ';': write commas"),
    ('"x"\n"1" "u1"\n', r"ids\.txt, line 2: 2 fields, but a list of ids has one a line"),
    ('rater\n"1" "u1"\n', r"line 2: 2 field\(s\) but the header has 1 .*row names"),
])
def test_a_test_raters_file_that_cannot_be_read_says_why(tmp_path, text, message):
    from sklearn_piaa._cli_common import read_rater_ids

    path = tmp_path / "ids.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_rater_ids(str(path))


def test_ids_run_together_on_one_line_are_not_left_in_training(tmp_path, image_files):
    # "u2,u3" under the header "rater" was one id, warned of as absent: u2 and u3 were
    # meta-trained on as training raters
    table = _ratings_table(tmp_path, image_files)
    held = tmp_path / "held_out.csv"
    held.write_text("rater\nu2,u3\n")
    prior = tmp_path / "prior.pt"
    with pytest.raises(SystemExit, match=r"--test-raters: the test raters of .*held_out\.csv "
                                         r"include 'u2,u3', which is no rater, but 'u2', "
                                         r"'u3' are: several ids on one line"):
        main(["meta-train", str(table), "-o", str(prior), "--test-raters", str(held), *TRAIN])
    assert not prior.exists()


def test_test_raters_need_ratings_in_table1(tmp_path):
    with pytest.raises(SystemExit, match="--test-raters does not apply without --ratings"):
        main(["table1", "--test-raters", str(tmp_path / "ids.csv"), "--quiet"])
