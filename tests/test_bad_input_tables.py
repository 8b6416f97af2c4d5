"""Ratings tables and the command line: bad input gets an error naming file, column, line.

Each case here once gave a silent wrong answer (ids '7.0' for rater 7), a bare
UnicodeDecodeError or TypeError, a misleading message, or an option silently ignored.
"""

import argparse
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from sklearn_piaa import PIAAWarning
from sklearn_piaa._cli_common import plural
from sklearn_piaa.cli import _one_rater, console, main
from sklearn_piaa.datasets import read_flickr_aes, read_ratings

FLICKR_CSV = "FLICKR-AES_image_labeled_by_each_worker.csv"


def _csv(tmp_path, text, name="r.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    for name in names:
        Image.fromarray((rng.rand(16, 16, 3) * 255).astype(np.uint8)).save(folder / name,
                                                                            format="PNG")


# -- in-memory tables ----------------------------------------------------------------


def test_an_all_numeric_dataframe_keeps_integer_ids(tmp_path):
    pd = pytest.importorskip("pandas")
    _images(tmp_path, ["101", "102"])
    frame = pd.DataFrame({"rater": [7, 8], "image": [101, 102], "score": [1.5, 2.0]})
    # The ids must not depend on the other columns' types: as strings, or with image
    # files named by id, they are the same.
    data = read_ratings(frame, image_root=tmp_path)
    assert data.groups.tolist() == ["7", "8"]
    assert [os.path.basename(x) for x in data.X] == ["101", "102"]
    as_text = read_ratings(frame.astype({"image": str}), image_root=tmp_path)
    assert as_text.groups.tolist() == data.groups.tolist() and as_text.X == data.X
    np.testing.assert_array_equal(data.y, [1.5, 2.0])


def test_a_missing_value_of_a_nullable_dataframe_column_is_an_empty_cell():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"rater": pd.array([7, None], dtype="Int64"), "image": ["a", "b"],
                          "score": [1.0, 2.0]})
    with pytest.raises(ValueError, match="column 'rater' is empty at row 1"):
        read_ratings(frame, check_files=False)


def test_column_names_equal_after_stripping_are_refused():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"rater": ["a"], " rater": ["b"], "image": ["x"], "score": [1]})
    with pytest.raises(ValueError, match="the DataFrame: repeated column name 'rater'"):
        read_ratings(frame, check_files=False)
    with pytest.raises(ValueError, match="the dict table: repeated column name 'rater'"):
        read_ratings(dict(frame.to_dict("list")), check_files=False)


@pytest.mark.parametrize("column, value, shown", [
    ("score", 3, "int 3"),
    ("rater", "ann", "str 'ann'"),  # iterable, but one id, not three
    ("image", np.array("x.jpg"), "ndarray"),
    ("score", np.ones((2, 2)), "ndarray"),
])
def test_a_dict_table_needs_a_list_per_column(column, value, shown):
    table = {"rater": ["a", "b"], "image": ["x", "y"], "score": [1, 2], column: value}
    with pytest.raises(ValueError, match=f"the dict table: column '{column}' must be a 1-D "
                                         f"list or array .*got {shown}"):
        read_ratings(table, check_files=False)


# -- CSV files -----------------------------------------------------------------------


@pytest.mark.parametrize("content, found", [
    ("rater,image,score\nJosé,a.jpg,3\n".encode("latin-1"),
     r"is not UTF-8 text: byte 0xe9 at byte 21 \(line 2\)"),
    ("rater,image,score\nann,a.jpg,3\n".encode("utf-16"),
     r"is not UTF-8 text \(it looks UTF-16 encoded\): byte 0xff at byte 0 \(line 1\)"),
    # counted in the file's bytes, byte-order mark included
    (b"\xef\xbb\xbfrater,image,score\nann,a.jpg,3\nb\xf6b,b.jpg,1\n",
     r"is not UTF-8 text: byte 0xf6 at byte 34 \(line 3\)"),
])
def test_a_csv_that_is_not_utf8_names_the_file_and_the_byte(tmp_path, content, found):
    path = _csv(tmp_path, content, "latin.csv")
    with pytest.raises(ValueError, match=rf"latin\.csv {found} is not valid UTF-8; re-save it "
                                         "as UTF-8"):
        read_ratings(path, check_files=False)


def test_a_model_file_given_for_the_ratings_is_named_as_one(tmp_path):
    # "prior.pt is not UTF-8 text: byte 0x80 ...; re-save it as UTF-8" for arguments
    # given in another order (sklearn-piaa evaluate ratings.csv prior.pt)
    path = tmp_path / "prior.pt"
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"prior\.pt is a zip archive \(a model file, as "
                                         r"sklearn-piaa saves them\?\), not a CSV of ratings: "
                                         r"were the arguments given in another order\?"):
        read_ratings(path, check_files=False)


def test_a_worker_list_that_is_not_utf8_names_the_file(tmp_path):
    _csv(tmp_path, "worker, imagePair, score\nw1, a.jpg, 3\nw2, b.jpg, 4\n", FLICKR_CSV)
    _csv(tmp_path, "worker\nJosé\n".encode("latin-1"), "test_workers.csv")
    with pytest.raises(ValueError, match=r"test_workers\.csv is not UTF-8 text.*line 2"):
        read_flickr_aes(tmp_path, check_files=False)


@pytest.mark.parametrize("text, image", [
    ('rater, image, score\nann, "my image, v2.jpg", 4\n', "my image, v2.jpg"),
    ('rater,image,score\nann,   "my image, v2.jpg"  ,4\n', "my image, v2.jpg"),
    # what already worked stays as it was
    ('rater,image,score\nann,"my image, v2.jpg",4\n', "my image, v2.jpg"),
    (" rater , image , score \n ann ,  a b.jpg , 4 \n", "a b.jpg"),
    ('"rater","image","score"\n"ann","a.jpg","4"\n', "a.jpg"),
    ("rater,image,score,\nann,a.jpg,4,\n", "a.jpg"),
    ("rater,image,score\r\nann,a.jpg,4\r\n", "a.jpg"),
    ("rater,image,score\rann,a.jpg,4\r", "a.jpg"),
])
def test_spaces_before_a_quoted_cell_are_ignored(tmp_path, text, image):
    data = read_ratings(_csv(tmp_path, text), check_files=False)
    assert data.groups.tolist() == ["ann"] and data.y.tolist() == [4.0]
    assert data.X == [str(tmp_path / image)]


def test_a_quoted_cell_keeps_inner_spaces_and_line_numbers_stay_right(tmp_path):
    path = _csv(tmp_path, 'rater,image,score\nann, "a, b.jpg", 4\n\nann, c.jpg, x\n')
    with pytest.raises(ValueError, match=r"line 4 \('x'\)"):
        read_ratings(path, check_files=False)
    data = read_ratings(_csv(tmp_path, 'rater,image,score\nann, " a, b.jpg", 4\n'),
                        check_files=False)
    assert data.X == [str(tmp_path / "a, b.jpg")]


@pytest.mark.parametrize("text, line, column, end", [
    # a stray quote in an unused last column once swallowed every later row silently
    ('rater,image,score,comment\nann,a.jpg,4,"great light\nann,b.jpg,3,ok\n'
     'bob,a.jpg,2,meh\n', 2, "comment", 4),
    ('rater,image,score\n\nann,"a.jpg,4\nann,b.jpg,3\nbob,a.jpg,2\n', 3, "image", 5),
    ('rater,image,score\nann, "a,\nb.jpg", 4\n', 2, "image", 3),
])
def test_a_cell_running_over_lines_is_refused_at_its_first_line(tmp_path, text, line,
                                                                 column, end):
    with pytest.raises(ValueError, match=rf"r\.csv, line {line}: the quoted cell in column "
                                         rf"'{column}' is not closed on its line but on "
                                         rf"line {end}"):
        read_ratings(_csv(tmp_path, text), check_files=False)


def test_a_comment_on_several_lines_in_an_unused_column_is_read(tmp_path):
    # Mechanical Turk exports quote comments written on several lines: valid CSV, once
    # refused as a stray quote.
    data = read_ratings(_csv(tmp_path, 'rater,comment,image,score\n'
                                       'ann,"great light,\nbut ""dark""",a.jpg,4\n'
                                       'ann,ok,b.jpg,3\nbob,"meh\r\n\r\nreally",a.jpg,2\n'),
                        check_files=False)
    assert data.y.tolist() == [4.0, 3.0, 2.0] and data.groups.tolist() == ["ann", "ann", "bob"]


@pytest.mark.parametrize("text", [
    # a stray quote closed by another: a line inside the cell reads as a row
    'rater,image,score,comment\nann,a.jpg,4,"great light\nann,b.jpg,3,ok"\nbob,a.jpg,2,x\n',
    # more fields than the header
    'rater,image,score,comment\nann,a.jpg,4,"two\nlines",extra\n',
    # the quote closed before other text
    'rater,image,score,comment\nann,a.jpg,4,"two\nlines"x\n',
])
def test_a_cell_over_lines_in_an_unused_column_is_refused_where_unsound(tmp_path, text):
    with pytest.raises(ValueError, match=r"line 2: the quoted cell in column 'comment' is "
                                         r"not closed on its line"):
        read_ratings(_csv(tmp_path, text), check_files=False)


def test_a_score_beyond_float32_names_its_line(tmp_path):
    # finite here, infinite once cast for the network, where "y has 1 NaN or infinite
    # score(s)" came after numpy's "overflow encountered in cast", with no line
    path = _csv(tmp_path, "rater,image,score\nann,a.jpg,4\nann,b.jpg,-1e39\n")
    with pytest.raises(ValueError, match=r"r\.csv: column 'score' must hold finite numbers "
                                         r"within float32's range .*line 3 \('-1e39'\)"):
        read_ratings(path, check_files=False)
    assert read_ratings(_csv(tmp_path, "rater,image,score\nann,a.jpg,3e38\n", "ok.csv"),
                        check_files=False).tasks.y[0] == np.float32(3e38)


def test_an_unclosed_quote_in_a_long_file_names_its_line(tmp_path):
    text = "rater,image,score,comment\nann,a.jpg,4,\"great light\n" + "".join(
        f"r{i % 50},b{i}.jpg,3,ok\n" for i in range(8000))  # past csv's 131072 field limit
    with pytest.raises(ValueError, match=r"r\.csv, line 2: field larger than field limit"):
        read_ratings(_csv(tmp_path, text), check_files=False)


def test_ids_of_a_float_column_and_scores_with_underscores(tmp_path):
    pd = pytest.importorskip("pandas")
    # one blank id makes pandas store the column as float; dropna leaves 7.0 and 8.0
    frame = pd.DataFrame({"rater": [7.0, np.nan, 8.0], "image": ["x", "y", "x"],
                          "score": [4, 3, 5]}).dropna()
    assert read_ratings(frame, check_files=False).tasks.raters == ["7", "8"]
    table = {"rater": ["a", "a"], "image": ["x", "y"], "score": ["4_5", "3"]}
    with pytest.raises(ValueError, match=r"column 'score' must hold finite numbers.*"
                                         r"row 0 \('4_5'\)"):
        read_ratings(table, check_files=False)


@pytest.mark.parametrize("sep, shown", [(";", "';'"), ("\t", r"'\\t'")])
def test_a_file_separated_by_semicolons_or_tabs_is_refused(tmp_path, sep, shown):
    path = _csv(tmp_path, sep.join(["rater", "image", "score"]) + "\n"
                + sep.join(["ann", "a.jpg", "3,5"]) + "\n", "semi.csv")
    with pytest.raises(ValueError, match=rf"semi\.csv must be comma-separated.* separated by "
                                         rf"{shown}"):
        read_ratings(path, check_files=False)


def test_a_semicolon_file_is_shown_how_pandas_reads_it_into_read_ratings(tmp_path):
    # "re-save it with commas" was the only way out, though read_ratings takes a
    # DataFrame; its images are then looked for in the current directory, not the CSV's.
    pd = pytest.importorskip("pandas")
    _images(tmp_path, ["a.png", "b.png"])
    path = _csv(tmp_path, "rater;image;score\n007;a.png;3,5\n7;b.png;4\nNA;a.png;2\n",
                "semi.csv")
    with pytest.raises(ValueError) as info:
        read_ratings(path)
    advice = f"read_ratings(pandas.read_csv({path!r}, sep=';', decimal=',', " \
             "dtype={'rater': str, 'image': str}, keep_default_na=False), " \
             f"image_root={str(tmp_path)!r})"
    assert "re-save it with commas between the columns, or, in Python" in str(info.value)
    assert advice in str(info.value)
    data = eval(advice, {"read_ratings": read_ratings, "pandas": pd})  # the advice works
    assert data.y.tolist() == [3.5, 4.0, 2.0] and data.X[0] == str(tmp_path / "a.png")
    # raters "007" and "7" stay two (pandas alone read both as 7), "NA" a rater
    assert data.groups.tolist() == ["007", "7", "NA"]
    # no decimal commas: no decimal=','; Excel's "sep=;" line: skiprows=1
    path = _csv(tmp_path, "sep=;\nrater;image;score\nann;a.png;3.5\n", "excel.csv")
    with pytest.raises(ValueError, match=r"declares ';'; .*read_ratings\(pandas\.read_csv\("
                                         r".*excel\.csv', sep=';', skiprows=1, "
                                         r"dtype=\{'rater': str, 'image': str\}, "
                                         r"keep_default_na=False\), "
                                         r"image_root="):
        read_ratings(path)
    data = read_ratings(pd.read_csv(path, sep=";", skiprows=1), image_root=tmp_path)
    assert data.y.tolist() == [3.5]
    # a data set's reader takes a folder, not a DataFrame: no such advice
    _csv(tmp_path, "worker;imagePair;score\nw1;a.png;3\n", FLICKR_CSV)
    with pytest.raises(ValueError, match="re-save it with commas between the columns.$"):
        read_flickr_aes(tmp_path, split=None)


def test_a_missing_column_suggests_the_found_one_in_python_and_on_the_command_line(
        tmp_path, capsys):
    # The message listed the columns found but left the user to work out the option.
    path = _csv(tmp_path, "user,image,score,n_ratings\nann,a.png,3,2\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['rater'\]; found columns "
                       r".* To read 'user' as the rater column, pass rater_col='user' "
                       r"\(--rater-col user on the command line\)\.$"):
        read_ratings(path, check_files=False)
    # the command line reads it through the same reader, and prints the message as is
    assert console(["meta-train", path, "-o", str(tmp_path / "p.pt"), "--quiet"]) == 1
    assert "--rater-col user on the command line" in capsys.readouterr().err
    # the likeliest of several, a count column left aside, and each missing column named
    frame = {"rater_id": ["a"], "img": ["x"], "n_ratings": [2], "rating": [3], "notes": [""]}
    with pytest.raises(ValueError, match=r"To read 'rater_id' as the rater column and 'img' "
                       r"as the image column and 'rating' as the score column, pass "
                       r"rater_col='rater_id', image_col='img', score_col='rating' "
                       r"\(--rater-col rater_id --image-col img --score-col rating on"):
        read_ratings(frame, check_files=False)
    # no name says it, but only one column is left: that one
    with pytest.raises(ValueError, match=r"pass score_col='Bewertung' \(--score-col"):
        read_ratings({"rater": ["a"], "image": ["x"], "Bewertung": [3]}, check_files=False)
    with pytest.raises(ValueError) as info:  # two candidates, none likelier: no guess
        read_ratings({"rater": ["a"], "image": ["x"], "rating": [3], "value": [3]},
                     check_files=False)
    assert "To read" not in str(info.value)
    # personalize reads one person's file without a rater column
    one = _csv(tmp_path, "img,score\na.png,3\n", "one.csv")
    with pytest.raises(ValueError, match=r"pass image_col='img' \(--image-col img on"):
        _one_rater(argparse.Namespace(ratings=one, rater_col="rater", image_col="image",
                                      score_col="score", rater=None, image_root=None,
                                      on_error="raise"))


def test_empty_columns_without_a_name_are_dropped_and_full_ones_named(tmp_path):
    # Excel ends every line with "," per column it once formatted: the file was refused
    # as having "repeated column names in the header ['rater', 'image', 'score', '', '']"
    path = _csv(tmp_path, "rater,image,score,,\r\nann,a.jpg,3,,\r\nann,b.jpg,4,,\r\n"
                          ",,,,\r\n\r\n", "excel.csv")
    data = read_ratings(path, check_files=False)
    assert data.groups.tolist() == ["ann", "ann"] and data.y.tolist() == [3.0, 4.0]
    # an empty one inside, and a row that leaves out the unnamed ones at the end
    path = _csv(tmp_path, "rater,,image,score,\nann,,a.jpg,3,\nann,,b.jpg,4\n", "mid.csv")
    assert read_ratings(path, check_files=False).y.tolist() == [3.0, 4.0]
    # but not one that leaves out a named column
    with pytest.raises(ValueError, match=r"line 2: 2 field\(s\) but the header has 4"):
        read_ratings(_csv(tmp_path, "rater,image,score,\nann,a.jpg\n"), check_files=False)
    # unnamed columns holding data: one would be kept in place of the others
    path = _csv(tmp_path, "rater,image,score,,\nann,a.jpg,3,,\nann,b.jpg,4,too dark,x\n",
                "notes.csv")
    with pytest.raises(ValueError) as info:
        read_ratings(path, check_files=False)
    assert str(info.value) == (
        f"{path}: 2 columns hold data but have no name in the header (columns 4, 5 of "
        "['rater', 'image', 'score', '', '']; e.g. line 3: 'too dark'); name them in the "
        "header, or delete them.")
    # a single one after the named ones: the decimals of scores written "3,5"
    path = _csv(tmp_path, "rater,image,score,\nann,a.jpg,4,\nann,b.jpg,3,5\n",
                "decimals.csv")
    with pytest.raises(ValueError) as info:
        read_ratings(path, check_files=False)
    assert str(info.value).startswith(
        f"{path}: column 4 holds data but has no name in the header (['rater', 'image', "
        "'score', '']; e.g. line 3: '5'); a score written with a decimal comma (3,5) is "
        "split in two")
    # a single one first (R's row names) is read as before
    path = _csv(tmp_path, '"","rater","image","score"\n"1","ann","a.jpg",3\n', "r.csv")
    assert read_ratings(path, check_files=False).groups.tolist() == ["ann"]
    # and a separator other than a comma is still named, trailing commas or not
    with pytest.raises(ValueError, match=r"must be comma-separated.* separated by ';'"):
        read_ratings(_csv(tmp_path, "rater;image;score,,\nann;a.jpg;3,,\n"),
                     check_files=False)


def test_byte_order_marks_where_files_were_joined_are_dropped(tmp_path):
    # "cat a.csv b.csv": the second file's mark glued onto its first rater ("\ufeffb",
    # another rater than "b") or image (missing, though it exists), unseen in messages
    _images(tmp_path / "img", ["a.png", "b.png"])
    path = _csv(tmp_path, "\ufeffrater,image,score\nb,img/a.png,3\n\ufeffb,img/b.png,4\n"
                          "\ufeffb,\ufeffimg/a.png,5\n")
    data = read_ratings(path, duplicates="mean")
    assert data.groups.tolist() == ["b", "b"] and data.y.tolist() == [4.0, 4.0]


def test_a_single_column_header_is_not_mistaken_for_a_delimiter(tmp_path):
    path = _csv(tmp_path, "rater\nann\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['image', 'score'\]"):
        read_ratings(path, check_files=False)


def test_blank_lines_before_the_header_are_skipped(tmp_path):
    path = _csv(tmp_path, "\n \r\n\nrater,image,score\nann,a.jpg,3\nann,b.jpg,x\n")
    with pytest.raises(ValueError, match=r"line 6 \('x'\)"):  # lines count from the top
        read_ratings(path, check_files=False)
    data = read_ratings(_csv(tmp_path, "\n\nrater,image,score\nann,a.jpg,3\n"),
                        check_files=False)
    assert data.groups.tolist() == ["ann"] and data.y.tolist() == [3.0]
    with pytest.raises(ValueError, match=r"blank\.csv is empty"):
        read_ratings(_csv(tmp_path, "\n \n\n", "blank.csv"), check_files=False)


# -- the missing-images advice -------------------------------------------------------


def test_the_missing_images_error_names_how_to_set_the_image_folder(tmp_path):
    _images(tmp_path, ["here.png"])
    path = _csv(tmp_path, "rater,image,score\nann,zzz.jpg,3\nann,here.png,4\n")
    with pytest.raises(FileNotFoundError) as info:
        read_ratings(path)
    message = str(info.value)
    assert "zzz.jpg" in message
    # reading without the check only helps a fit that skips unreadable images (and is
    # not offered where every image is missing: see test_readers)
    assert "check_files=False and fit with on_error='skip' (--on-error skip" in message
    assert "image_root=" in message and "--image-root on the command line" in message
    _csv(tmp_path, "worker, imagePair, score\nw1, zzz.jpg, 3\n", FLICKR_CSV)
    with pytest.raises(FileNotFoundError, match="image_dir=") as info:
        read_flickr_aes(tmp_path, split=None)
    assert "image_root" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="image_root=; --image-root"):
        main(["meta-train", path, "-o", str(tmp_path / "p.pt")])


def test_meta_train_on_error_skip_skips_missing_images(tmp_path):
    names = [f"i{k}.png" for k in range(8)]
    _images(tmp_path / "img", names[1:])  # the first is missing
    rows = [f"{r},{n},{1 + (k + j) % 5}" for j, r in enumerate("ab") for k, n in enumerate(names)]
    path = _csv(tmp_path, "rater,image,score\n" + "\n".join(rows) + "\n")
    args = ["meta-train", path, "--image-root", str(tmp_path / "img"), "--backbone",
            "tiny_cnn", "--n-iterations", "1", "--support-size", "3", "--query-size", "2",
            "-o", str(tmp_path / "p.pt"), "--quiet"]
    with pytest.raises(FileNotFoundError, match="1 of the 8 image file"):
        main(args)
    with pytest.warns(UserWarning, match=r"1 image\(s\) could not be read.*i0\.png"):
        main(args + ["--on-error", "skip"])
    assert (tmp_path / "p.pt").is_file()


# -- the command line ----------------------------------------------------------------


@pytest.mark.parametrize("options, named", [
    (["--rater-col", "worker", "--score-col", "s"], "--rater-col, --score-col do not apply"),
    (["--image-col", "imagePair"], "--image-col does not apply"),
])
def test_table_options_are_refused_with_a_data_set_format(tmp_path, options, named):
    _csv(tmp_path, "worker, imagePair, score\nw1, a.jpg, 3\n", FLICKR_CSV)
    message = f"{named} with --format flickr-aes"
    with pytest.raises(SystemExit, match=message):
        main(["meta-train", str(tmp_path), "--format", "flickr-aes", *options,
              "-o", str(tmp_path / "p.pt")])
    # before the prior is loaded: no work is done for a command that would mislead
    with pytest.raises(SystemExit, match=message):
        main(["evaluate", str(tmp_path / "no_prior.pt"), str(tmp_path), "--format",
              "flickr-aes", *options])


def test_image_root_moves_a_data_sets_image_folder(tmp_path, monkeypatch):
    # Images unpacked one level deeper (40K/40K/*.jpg) or on another disk: --image-root
    # was refused with every --format.
    from sklearn_piaa._cli_parser import build_parser
    from sklearn_piaa.cli import _read_data

    root = tmp_path / "flickr"
    root.mkdir()
    _csv(root, "worker, imagePair, score\nw1, a.png, 3\nw2, a.png, 5\n", FLICKR_CSV)
    _csv(root, "worker\nw2\n", "test_workers.csv")
    _images(root / "40K" / "40K", ["a.png"])
    parse = build_parser()[0].parse_args
    monkeypatch.chdir(root)  # a relative --image-root is relative to where one runs
    args = parse(["meta-train", str(root), "--format", "flickr-aes", "--image-root",
                  os.path.join("40K", "40K"), "-o", str(tmp_path / "p.pt")])
    data = _read_data(args)
    assert data.X == [str(root / "40K" / "40K" / "a.png")] * 2 and data.test_raters == ["w2"]
    # without it, the missing images' error says how to move the folder: here, to the
    # one level deeper that holds them
    args = parse(["meta-train", str(root), "--format", "flickr-aes", "-o", "p.pt"])
    deeper = re.escape(str(root / "40K" / "40K"))
    with pytest.raises(FileNotFoundError, match=rf"found under {deeper}: pass image_dir="
                                                rf"'{deeper}' \(--image-root {deeper} on the "
                                                "command line"):
        _read_data(args)


def test_a_wrong_path_or_format_says_what_to_pass(tmp_path):
    flickr = _csv(tmp_path, "worker, imagePair, score\nw1, a.jpg, 3\n", FLICKR_CSV)
    out = ["-o", str(tmp_path / "p.pt")]
    # the ratings file given where the data set's folder is expected: it was looked for
    # inside itself ("not found: <file>/<file>")
    with pytest.raises(NotADirectoryError, match=r"is a file, but the path must be the data "
                       r"set's folder \(the one holding FLICKR-AES_.*\.csv\); here "
                       + str(tmp_path)):
        main(["meta-train", flickr, "--format", "flickr-aes", *out])
    # a data set's folder read as a ratings table ("ratings file not found: <folder>")
    with pytest.raises(IsADirectoryError, match="is a folder; pass the ratings CSV, or, as "
                       "it holds FLICKR-AES's .*--format flickr-aes"):
        main(["meta-train", str(tmp_path), *out])
    (tmp_path / "other").mkdir()
    with pytest.raises(IsADirectoryError, match=r"other is a folder; pass the ratings CSV, "
                       r"or --format <name> \(flickr-aes, para"):
        read_ratings(tmp_path / "other")
    # a data set's ratings file read as a plain table
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['rater', 'image'\].*are those "
                       r"of FLICKR-AES's .*--format flickr-aes.*read_flickr_aes"):
        main(["meta-train", flickr, *out])
    with pytest.raises(FileNotFoundError, match="data set folder not found: .*nowhere"):
        read_flickr_aes(tmp_path / "nowhere")


def test_table1_refuses_table_options_without_ratings():
    # A tiny run, so that the test stays quick should the refusal ever go.
    tiny = ["--n-images", "20", "--n-raters", "4", "--images-per-rater", "10",
            "--image-size", "16", "--backbone", "tiny_cnn", "--algorithms", "none",
            "--n-support", "2", "--n-repeats", "1", "--n-iterations", "1", "--quiet"]
    with pytest.raises(SystemExit, match="--rater-col does not apply without --ratings.*"
                                         "built-in benchmark"):
        main(["table1", "--rater-col", "worker", *tiny])


def test_the_command_prints_option_errors_as_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SKLEARN_PIAA_TRACEBACK", raising=False)
    args = ["meta-train", str(tmp_path), "--format", "para", "--rater-col", "x",
            "-o", str(tmp_path / "p.pt")]
    assert console(args) == 1
    err = capsys.readouterr().err
    assert err == ("sklearn-piaa: error: --rater-col does not apply with --format para, "
                   "which reads the data set's own columns under DATA; use "
                   "--format table (the default) for a CSV laid out otherwise.\n")
    monkeypatch.setenv("SKLEARN_PIAA_TRACEBACK", "1")
    with pytest.raises(SystemExit, match="--rater-col does not apply"):
        console(args)
    assert "Traceback" in capsys.readouterr().err  # asked for: Python prints none for exits


def test_argparse_exits_pass_through_the_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        console(["evaluate", "p.pt", "d.csv", "--score-range", "0-500"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--score-range: expected LOW,HIGH: two numbers separated by a comma" in err
    assert "'0-500'" in err and "invalid _score_range value" not in err
    with pytest.raises(SystemExit, match="^0$"):
        console(["--help"])


@pytest.mark.parametrize("text", ["1", "1,2,3", "a,b", ""])
def test_score_range_must_be_two_numbers(text, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "p.pt", "d.csv", "--score-range", text])
    assert "expected LOW,HIGH" in capsys.readouterr().err


def test_an_unknown_rater_is_named_with_the_raters_there(tmp_path):
    _images(tmp_path, ["a.png"])
    raters = [f"r{i:02d}" for i in range(12)]
    path = _csv(tmp_path, "rater,image,score\n" + "".join(f"{r},a.png,3\n" for r in raters))
    args = argparse.Namespace(ratings=path, rater="nope", rater_col="rater",
                              image_col="image", score_col="score", image_root=None,
                              on_error="raise")
    with pytest.raises(SystemExit) as info:
        _one_rater(args)
    assert info.value.code == (f"no rater 'nope' in {path}; it has r00, r01, r02, r03, r04, "
                               "r05, r06, r07, r08, r09, ... (12 in all).")


def test_one_persons_csv_with_a_column_of_several_people_is_refused(tmp_path):
    # without a 'rater' column, a file of several people who each rated other images
    # was fine-tuned on as one person (the check caught only repeated images)
    _images(tmp_path, ["a.png", "b.png", "c.png"])

    def one_rater(text):
        args = argparse.Namespace(ratings=_csv(tmp_path, text), rater=None,
                                  rater_col="rater", image_col="image", score_col="score",
                                  image_root=None, on_error="raise")
        return _one_rater(args)

    with pytest.raises(SystemExit, match="its column 'WorkerID' holds several values: if "
                                         "it names the rater, pass --rater-col WorkerID"):
        one_rater("image,score,WorkerID\na.png,3,w1\nb.png,4,w2\nc.png,2,w2\n")
    # one person named in it, or another kind of column: one person's ratings
    for extra in ("user\nw1\nw1\nw1", "taken\n2024-01-02\n2024-03-04\n2024-05-06"):
        name, *values = extra.split("\n")
        rows = "".join(f"{im},{i + 2},{v}\n" for i, (im, v) in enumerate(
            zip(["a.png", "b.png", "c.png"], values)))
        rater, X, y = one_rater(f"image,score,{name}\n{rows}")
        assert rater == "you" and len(y) == 3


def test_image_names_relative_to_where_one_runs_point_at_image_root_dot(tmp_path,
                                                                        monkeypatch):
    # personalize mine/me.csv naming mine/imgs/a.png: "missing under <mine>" only
    _images(tmp_path / "mine" / "imgs", ["a.png", "b.png"])
    path = _csv(tmp_path / "mine", "image,score\nmine/imgs/a.png,3\nmine/imgs/b.png,4\n",
                "me.csv")
    monkeypatch.chdir(tmp_path)

    def one_rater(image_root):
        return _one_rater(argparse.Namespace(
            ratings=os.path.relpath(path), rater=None, rater_col="rater", image_col="image",
            score_col="score", image_root=image_root, on_error="raise"))

    with pytest.raises(FileNotFoundError, match=r"names are found relative to the current "
                       r"directory \(.*\): pass image_root='\.' \(--image-root \. on the "
                       r"command line\)\.$"):
        one_rater(None)
    rater, X, y = one_rater(".")
    assert X == [str(tmp_path / "mine" / "imgs" / n) for n in ("a.png", "b.png")]


def test_counts_are_worded_in_the_singular_for_one():
    assert [plural(n, "draw") for n in (0, 1, 2)] == ["0 draws", "1 draw", "2 draws"]


def test_meta_train_and_evaluate_say_one_rater_and_one_draw(tmp_path, capsys):
    names = [f"{i}.png" for i in range(12)]
    _images(tmp_path / "40K", names)
    rows = [f"w{u}, {im}, {1 + (u + i) % 5}" for u in range(3) for i, im in enumerate(names)]
    _csv(tmp_path, "worker, imagePair, score\n" + "\n".join(rows) + "\n", FLICKR_CSV)
    _csv(tmp_path, "worker\nw2\n", "test_workers.csv")
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(tmp_path), "--format", "flickr-aes", "-o", str(prior),
          "--backbone", "tiny_cnn", "--n-iterations", "1", "--tasks-per-batch", "2",
          "--support-size", "4", "--query-size", "4", "--quiet"])
    out = capsys.readouterr().out
    assert "2 raters, 24 ratings for meta-training (1 test rater left out)" in out
    main(["evaluate", str(prior), str(tmp_path), "--format", "flickr-aes", "--n-support",
          "5", "--n-repeats", "1", "--quiet"])
    out = capsys.readouterr().out
    assert "evaluating 1 rater of " in out and "support images, 1 draw each" in out


def test_predict_refuses_a_named_image_that_does_not_exist(tmp_path, capsys, monkeypatch):
    # It was scored NaN as an unreadable image, with exit status 0.
    monkeypatch.delenv("SKLEARN_PIAA_TRACEBACK", raising=False)
    present = tmp_path / "present.jpg"
    Image.new("RGB", (8, 8)).save(present)
    typo = tmp_path / "typo.jpg"
    # The check comes before the model is read: no model file is needed to see it.
    assert console(["predict", str(tmp_path / "prior.pt"), str(present), str(typo)]) == 1
    assert capsys.readouterr().err == f"sklearn-piaa: error: no such file or folder: {typo}\n"


def test_a_negative_score_range_is_read_on_the_command_line(capsys):
    # argparse took "-10,0" for an option: "expected one argument".
    with pytest.raises(SystemExit):
        main(["evaluate", "p.pt", "d.csv", "--score-range", "-10,0", "--n-support", "x"])
    err = capsys.readouterr().err.splitlines()[-1]
    assert "--n-support: expected a positive integer, got 'x'" in err  # not --score-range
    with pytest.raises(FileNotFoundError, match="d.csv"):  # parsed: on to the files
        main(["evaluate", "p.pt", "d.csv", "--score-range", "-10,0"])
    with pytest.raises(FileNotFoundError, match="d.csv"):  # abbreviated, as argparse takes
        main(["evaluate", "p.pt", "d.csv", "--score-r", "-10,0"])


@pytest.mark.parametrize("command", ["evaluate p.pt d.csv", "demo", "table1"])
def test_a_support_size_twice_is_refused_by_the_parser(command, capsys):
    # evaluate read the data and the prior, then failed naming n_support (Python's)
    with pytest.raises(SystemExit) as exit_:
        main([*command.split(), "--n-support", "10", "5", "10"])
    assert exit_.value.code == 2
    assert ("argument --n-support: lists 10 more than once; give each support size once"
            in capsys.readouterr().err)


def test_folder_search_finds_every_photo_format_and_linked_folders(tmp_path):
    # .jfif, .jpe, .ppm, .tga ... were skipped in folders (scored when named), and so
    # were files in a linked folder; a link loop must not recurse for ever.
    from sklearn_piaa._cli_common import image_files
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("a.JPG", "b.jfif", "c.jpe", "d.ppm", "e.tga", "sub/f.png"):
        _save(photos / name)
    (photos / "notes.txt").write_text("not a photo")
    (photos / "model.h5").write_bytes(b"\x89HDF")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _save(elsewhere / "g.png")
    os.symlink(elsewhere, photos / "linked")
    os.symlink(photos, photos / "sub" / "loop")
    found = sorted(os.path.relpath(f, photos) for f in image_files([str(photos)]))
    assert found == ["a.JPG", "b.jfif", "c.jpe", "d.ppm", "e.tga", "linked/g.png",
                     "sub/f.png"]


def _save(path):
    formats = {".jfif": "JPEG", ".jpe": "JPEG", ".jpg": "JPEG", ".ppm": "PPM",
               ".tga": "TGA", ".png": "PNG"}
    Image.new("RGB", (4, 4)).save(path, format=formats[os.path.splitext(str(path))[1].lower()])


def test_excel_sep_line_and_other_unicode_spellings_of_a_name(tmp_path):
    # Excel's "sep=," first line was taken for the header; a name typed as NFC "café"
    # did not find the NFD-spelled file (macOS zips), though both look the same.
    import unicodedata
    nfd = unicodedata.normalize("NFD", "café.png")
    Image.new("RGB", (4, 4)).save(tmp_path / nfd)
    Image.new("RGB", (4, 4)).save(tmp_path / "b.png")
    (tmp_path / "r.csv").write_text("sep=,\r\nrater,image,score\r\nann,café.png,3\r\n"
                                    "ann,b.png,4\r\nann,b.png,x,y\r\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 5: 4 field\(s\)"):  # lines still counted
        read_ratings(tmp_path / "r.csv")
    (tmp_path / "r.csv").write_text("sep=,\nrater,image,score\nann,café.png,3\nann,b.png,4\n")
    data = read_ratings(tmp_path / "r.csv")
    assert [os.path.basename(p) for p in data.X] == [nfd, "b.png"]
    (tmp_path / "s.csv").write_text("sep=;\nrater;image;score\n")
    with pytest.raises(ValueError, match="declares ';'"):
        read_ratings(tmp_path / "s.csv")


def test_a_nan_rater_id_in_a_frame_is_an_empty_cell_not_rater_nan():
    # _is_blank: a float NaN (what pandas stores for a missing cell) is blank; without
    # that check the row was read as rater 'nan'
    table = {"rater": ["ann", float("nan")], "image": ["a.jpg", "b.jpg"], "score": [3, 4]}
    with pytest.raises(ValueError, match=r"column 'rater' is empty at row 1"):
        read_ratings(table, check_files=False)


def test_dict_columns_of_different_lengths_are_refused():
    table = {"rater": ["ann", "bob"], "image": ["a.jpg", "b.jpg", "c.jpg"],
             "score": [3, 4, 5]}
    with pytest.raises(ValueError, match="differ in length"):
        read_ratings(table, check_files=False)


def test_an_unnamed_second_column_holding_data_is_refused(tmp_path):
    # only the first unnamed column (R's row names) may hold data
    path = tmp_path / "r.csv"
    path.write_text("rater,,image,score\nann,x,a.jpg,4\nbob,y,b.jpg,2\n")
    with pytest.raises(ValueError, match="column 2 holds data but has no name"):
        read_ratings(path, check_files=False)


def test_image_paths_are_normalised_and_spellings_of_one_file_merged(tmp_path):
    (tmp_path / "sub").mkdir()
    table = {"rater": ["ann", "ann"], "image": ["sub/../a.jpg", "./a.jpg"], "score": [4, 2]}
    with pytest.warns(PIAAWarning, match="more than once"):
        data = read_ratings(table, image_root=tmp_path, check_files=False)
    assert data.X == [os.path.join(str(tmp_path), "a.jpg")]
    np.testing.assert_array_equal(data.y, [3.0])
