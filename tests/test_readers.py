"""Tests of the data set readers, on tiny files in the distributed formats."""

import argparse
import copy
import os
import re
import shlex
import warnings

import numpy as np
import pytest
from conftest import ratings_folder
from PIL import Image

from sklearn_piaa import MetaAestheticRegressor, PIAAWarning, TaskSet
from sklearn_piaa.datasets import (
    read_aadb,
    read_flickr_aes,
    read_para,
    read_ratings,
    read_real_cur,
)

# The first two workers of the shipped FLICKR-AES test list, then the third (absent here).
SHIPPED = ["AGXT2OHMTWBRS", "AHPUVVEDSDA5F"]
FIRST_ABSENT = "AJCY65VHJYRG3"
FLICKR_CSV = "FLICKR-AES_image_labeled_by_each_worker.csv"


def _jpeg(path, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = np.random.RandomState(seed).randint(0, 256, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def flickr(tmp_path):
    """FLICKR-AES with 2 shipped test workers and 2 others, 4 images each."""
    workers = SHIPPED + ["A1TRAINONE", "A2TRAINTWO"]
    lines = ["worker, imagePair, score"]  # the distributed header, leading spaces included
    for w, worker in enumerate(workers):
        for k in range(4):
            name = f"farm1_{w}{k}_b.jpg"
            _jpeg(str(tmp_path / "40K" / name), seed=4 * w + k)
            lines.append(f"{worker}, {name}, {(w + k) % 5 + 1}")
    _write(str(tmp_path / FLICKR_CSV), "\n".join(lines) + "\n")
    return tmp_path


def test_flickr_aes_values_and_shipped_split(flickr):
    with pytest.warns(PIAAWarning, match="35 of the 37") as record:
        data = read_flickr_aes(flickr)
    message = str(record[0].message)
    assert FIRST_ABSENT in message and SHIPPED[0] not in message
    assert record[0].filename == __file__  # the warning points at the caller
    assert len(data.X) == 16 and data.y.dtype == np.float32
    assert data.X[0] == str(flickr / "40K" / "farm1_00_b.jpg")
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in data.X)
    assert data.y[:3].tolist() == [1.0, 2.0, 3.0]
    assert data.groups.dtype == object and data.groups[0] == SHIPPED[0]
    assert isinstance(data.tasks, TaskSet) and len(data.tasks) == 4
    assert data.test_raters == sorted(SHIPPED)
    assert data.train_raters == ["A1TRAINONE", "A2TRAINTWO"]
    assert set(data.train_raters).isdisjoint(data.test_raters)
    assert set(data.train_raters) | set(data.test_raters) == set(data.tasks.raters)
    assert data.train.raters == data.train_raters and data.test.raters == data.test_raters
    assert "2 train / 2 test" in data.DESCR


def test_scores_off_a_public_data_set_s_scale_are_warned_of(flickr):
    # a copy rescaled to 0-100 (or a column other than the score) was read without a word
    path = flickr / FLICKR_CSV
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0]] + [f"{line.rsplit(',', 1)[0]}, {20 * i}"
                                             for i, line in enumerate(text[1:])]) + "\n")
    with pytest.warns(PIAAWarning) as record:
        read_flickr_aes(flickr, split=None)
    message = next(str(w.message) for w in record if "scale" in str(w.message))
    assert "16 of 16 scores lie outside FLICKR-AES's 1-5 scale (from 0 to 300" in message
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path.write_text("\n".join(text) + "\n")
        read_flickr_aes(flickr, split=None)  # on the scale: nothing said


def test_a_flickr_aes_copy_without_the_shipped_test_workers_reads_without_a_split(flickr):
    # "none of the test workers ... read without a split to skip it": the command line
    # had no way to, and meta-train on such a copy failed
    path = flickr / FLICKR_CSV
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0]] + [line for line in lines[1:]
                                             if "TRAIN" in line]) + "\n")
    with pytest.warns(PIAAWarning, match="none of the 37 test workers of the Ren et al. "
                                         "split .* occurs in .*: read without a split"):
        data = read_flickr_aes(flickr)
    assert data.test is None and data.tasks.raters == ["A1TRAINONE", "A2TRAINTWO"]


def test_flickr_aes_split_files(flickr):
    _write(str(flickr / "test_workers.csv"), "worker\nA1TRAINONE\n")
    data = read_flickr_aes(flickr)
    assert data.test_raters == ["A1TRAINONE"]
    assert data.train_raters == sorted(SHIPPED + ["A2TRAINTWO"])
    _write(str(flickr / "train_workers.csv"), "worker\n" + "\n".join(SHIPPED) + "\n")
    with pytest.warns(PIAAWarning, match="neither the train nor the test.*A2TRAINTWO"):
        data = read_flickr_aes(flickr)
    assert data.train_raters == sorted(SHIPPED) and data.test_raters == ["A1TRAINONE"]
    _write(str(flickr / "train_workers.csv"), "worker\nA1TRAINONE\nA2TRAINTWO\n")
    with pytest.raises(ValueError, match="both the train and the test.*A1TRAINONE"):
        read_flickr_aes(flickr)
    _write(str(flickr / "test_workers.csv"), "id\nA1TRAINONE\n")
    with pytest.raises(ValueError, match="'worker' column"):
        read_flickr_aes(flickr)
    # Excel's trailing separator on the header only: refused as "1 field(s) but the
    # header has 2"
    _write(str(flickr / "train_workers.csv"), "worker,\nA2TRAINTWO\n")
    _write(str(flickr / "test_workers.csv"), "worker,\nA1TRAINONE\n")
    data = read_flickr_aes(flickr)
    assert data.test_raters == ["A1TRAINONE"] and data.train_raters == ["A2TRAINTWO"]
    # a header and no ids: "none of the test workers occurs in the ratings"
    _write(str(flickr / "test_workers.csv"), "worker\n")
    with pytest.raises(ValueError, match=r"the test workers listed in .* are given as an "
                                         r"empty list \(a split file with a header and no "
                                         r"ids\?\)"):
        read_flickr_aes(flickr)


def test_flickr_aes_split_file_with_empty_cells_and_short_rows(flickr):
    # An empty cell is a field: "1,,A1TRAINONE" must not read A1TRAINONE as the note and
    # leave it in training without a word.
    _write(str(flickr / "test_workers.csv"),
           "fold,note,worker\n1,,A1TRAINONE\n1,ok,AGXT2OHMTWBRS\n")
    data = read_flickr_aes(flickr)
    assert data.test_raters == sorted(["A1TRAINONE", SHIPPED[0]])
    assert "A1TRAINONE" not in data.train_raters
    _write(str(flickr / "test_workers.csv"), "fold\tnote\tworker\n1\t\tA1TRAINONE\n")
    assert read_flickr_aes(flickr).test_raters == ["A1TRAINONE"]
    _write(str(flickr / "test_workers.csv"), "fold,note,worker\n1,ok,A2TRAINTWO\n1,A1TRAINONE\n")
    with pytest.raises(ValueError, match=r"test_workers.csv, line 3: 2 field\(s\) but the "
                                         r"header has 3"):
        read_flickr_aes(flickr)
    _write(str(flickr / "test_workers.csv"), "fold note worker\n1 A1TRAINONE\n")
    with pytest.raises(ValueError, match="line 2: 2 field"):
        read_flickr_aes(flickr)
    _write(str(flickr / "test_workers.csv"), "fold,worker\n1,\n")
    with pytest.raises(ValueError, match="line 2: the 'worker' cell is empty"):
        read_flickr_aes(flickr)


def test_flickr_aes_no_split_and_bad_split(flickr):
    data = read_flickr_aes(flickr, split=None)
    assert data.train is data.test is data.train_raters is data.test_raters is None
    with pytest.raises(ValueError, match="split must be"):
        read_flickr_aes(flickr, split="random")


def test_flickr_aes_without_any_shipped_worker(tmp_path):
    # refused ("the test side would be empty ... read without a split"), which the
    # command line had no way to do: read without one, and said
    _write(str(tmp_path / FLICKR_CSV), "worker, imagePair, score\nw1, a.jpg, 3\n")
    with pytest.warns(PIAAWarning, match="read without a split"):
        data = read_flickr_aes(tmp_path, check_files=False)
    assert data.test is None and data.tasks.raters == ["w1"]


def test_para_session_folders_and_test_users(tmp_path):
    rows = ["userId,sessionId,imageName,aestheticScore,qualityScore"]
    for u, user in enumerate(["u1", "u2", "u3"]):
        for k, session in enumerate(["s10", "s11"]):
            _jpeg(str(tmp_path / "imgs" / session / f"i{k}.jpg"))
            rows.append(f"{user},{session},i{k}.jpg,{1 + u + k / 2},3")
    _write(str(tmp_path / "annotation" / "PARA-Images.csv"), "\n".join(rows) + "\n")
    data = read_para(tmp_path)
    assert data.X[1] == str(tmp_path / "imgs" / "s11" / "i1.jpg")
    assert data.y[:2].tolist() == [1.0, 1.5]
    assert data.train is None and data.test_raters is None
    with pytest.warns(PIAAWarning, match="1 of the 2 test users.*nobody"):
        data = read_para(tmp_path, test_users=["u3", "nobody"])
    assert data.test_raters == ["u3"] and data.train_raters == ["u1", "u2"]


def test_real_cur_mos_folders_all_test(tmp_path):
    rows = ["worker,image,MOS"]
    for worker in ["w1", "w2"]:
        for k, mos in enumerate([3.5, 5, 1.2]):
            _jpeg(str(tmp_path / "images" / worker / str(int(mos)) / f"p{k}.jpg"))
            rows.append(f"{worker},p{k}.jpg,{mos}")
    _write(str(tmp_path / "ratings.csv"), "\n".join(rows) + "\n")
    data = read_real_cur(tmp_path)
    assert data.X[0] == str(tmp_path / "images" / "w1" / "3" / "p0.jpg")
    assert data.y.tolist() == pytest.approx([3.5, 5, 1.2] * 2)
    assert data.test_raters == ["w1", "w2"] and data.test.raters == ["w1", "w2"]
    assert data.train_raters is None and data.train is None


def test_aadb_columns_and_test_workers(tmp_path):
    _write(str(tmp_path / "AADB_AllinAll.csv"), "imgName,workerID,score\na.jpg,7,2\nb.jpg,8,4\n")
    for name in ["a.jpg", "b.jpg"]:
        _jpeg(str(tmp_path / "datasetImages_originalSize" / name))
    data = read_aadb(tmp_path, test_workers=[8])
    assert data.groups.tolist() == ["7", "8"] and data.test_raters == ["8"]
    assert data.X[1] == str(tmp_path / "datasetImages_originalSize" / "b.jpg")
    assert read_aadb(tmp_path).test is None
    # a bare string was read as its characters: "12" held out workers 1 and 2
    with pytest.raises(ValueError, match=r"got the string '8'.*give \['8'\]"):
        read_aadb(tmp_path, test_workers="8")


def test_aadb_as_distributed_one_row_per_assignment(tmp_path):
    # AADB_AllinAll.csv is Mechanical Turk's results table, ten images per row: it was
    # refused for lacking workerID/imgName/score, with no way to read it.
    urls = [f"http://farm{k % 3 + 1}.staticflickr.com/{200 + k}/{1000 + k}_ab_b.jpg"
            for k in range(6)]
    names = [f"farm{k % 3 + 1}_{200 + k}_{1000 + k}_ab_b.jpg" for k in range(6)]
    for k, name in enumerate(names):
        _jpeg(str(tmp_path / "datasetImages_originalSize" / name), seed=k)
    header = ("HITId,WorkerId," + ",".join(f"Input.image_url{k}" for k in (1, 2, 3)) + ","
              + ",".join(f"Answer.overallScore{k}" for k in (1, 2, 3)) + ",Answer.comment\n")
    rows = [f'H1,WA,{",".join(urls[:3])},1,2,3,"nice\nset"\n',  # a comment over lines
            f"H2,WB,{','.join(urls[3:])},4,5,1,\n",
            f"H3,WA,{urls[3]},,,2,,,\n"]  # an assignment of one image
    _write(str(tmp_path / "AADB_AllinAll.csv"), header + "".join(rows))
    data = read_aadb(tmp_path, test_workers=["WB"])
    got = [(g, os.path.basename(x), float(v)) for x, v, g in zip(data.X, data.y, data.groups)]
    assert got == [("WA", names[0], 1.0), ("WA", names[1], 2.0), ("WA", names[2], 3.0),
                   ("WB", names[3], 4.0), ("WB", names[4], 5.0), ("WB", names[5], 1.0),
                   ("WA", names[3], 2.0)]
    assert data.train_raters == ["WA"] and data.test_raters == ["WB"]
    # a missing score is named at its line of the file
    _write(str(tmp_path / "AADB_AllinAll.csv"), header + rows[1] + f"H4,WC,{urls[0]},,,,,,\n")
    with pytest.raises(ValueError, match="line 3: column 'Answer.overallScore1' is empty, "
                                         "though 'Input.image_url1' holds 'http://farm1"):
        read_aadb(tmp_path)


@pytest.mark.parametrize("header, message", [
    # a misspelt partner: slot 2's ratings were dropped without a word
    ("WorkerId,Input.image_url1,Input.image_url2,Answer.overallScore1,Answer.overallscore2",
     r"column\(s\) \['Input.image_url2'\] have no partner .* \(misspelt as "
     r"\['Answer.overallscore2'\]\?\)"),
    # zero-padded slots: a bare KeyError 'Input.image_url1'
    ("WorkerId,Input.image_url01,Input.image_url02,Answer.overallScore01,"
     "Answer.overallScore02", None),
    # slot 1 twice: read twice as a repeated rating, the other column never
    ("WorkerId,Input.image_url1,Input.image_url01,Answer.overallScore1,Answer.overallScore01",
     "columns 'Input.image_url1' and 'Input.image_url01' are both slot 1"),
])
def test_aadb_slots_are_read_by_their_own_column_names(tmp_path, header, message):
    urls = "http://farm1.staticflickr.com/1/a_b.jpg,http://farm1.staticflickr.com/2/b_b.jpg"
    _write(str(tmp_path / "AADB_AllinAll.csv"), f"{header}\nW1,{urls},3,4\n")
    if message is None:
        data = read_aadb(tmp_path, check_files=False)
        assert [os.path.basename(x) for x in data.X] == ["farm1_1_a_b.jpg", "farm1_2_b_b.jpg"]
        assert data.y.tolist() == [3.0, 4.0]
    else:
        with pytest.raises(ValueError, match=message):
            read_aadb(tmp_path, check_files=False)


def test_aadb_columns_by_other_names_are_read_as_the_command_line_advises(tmp_path, capsys):
    # --format aadb reads the reader's default columns only: the advice named
    # rater_col=..., a parameter the command line does not have
    from sklearn_piaa.cli import console

    _write(str(tmp_path / "AADB_AllinAll.csv"),
           "img,worker,rating\n" + "".join(f"p{i}.jpg,w{i % 2},{1 + i % 5}\n" for i in range(8)))
    for i in range(8):
        _jpeg(str(tmp_path / "datasetImages_originalSize" / f"p{i}.jpg"), seed=i)
    prior = tmp_path / "prior.pt"
    common = ["--backbone", "tiny_cnn", "--n-iterations", "1", "--support-size", "2",
              "--query-size", "1", "-o", str(prior), "--quiet"]
    assert console(["meta-train", str(tmp_path), "--format", "aadb", *common]) == 1
    err = capsys.readouterr().err
    advice = re.search(r"on the command line, read \S+ as a table: DATA (.+) with (.+), "
                       r"without --format\)", err)
    assert advice is not None, err
    assert "rater_col='worker'" in err  # the Python advice stays
    args = [advice.group(1), *shlex.split(advice.group(2))]
    assert console(["meta-train", *args, *common]) == 0
    assert prior.exists()


def test_real_cur_refuses_an_image_rated_in_two_score_folders(tmp_path):
    # two paths (u1/4/a.jpg, u1/3/a.jpg): two ratings of "two images", no repeat seen
    _write(str(tmp_path / "ratings.csv"), "worker,image,MOS\nu1,a.jpg,4.6\nu1,a.jpg,3.2\n"
                                          "u1,b.jpg,2\n")
    with pytest.raises(ValueError, match=r"1 image\(s\) rated more than once by one user .* "
                                         r"'u1' rated 'a.jpg' 4.6 and 3.2; keep one"):
        read_real_cur(tmp_path, check_files=False)


# -- read_ratings validation ---------------------------------------------------------


def _table(**extra):
    table = {"rater": ["a", "a", "b", "b"], "image": ["x.jpg", "y.jpg", "x.jpg", "z.jpg"],
             "score": [1, 2, 3, 4]}
    table.update(extra)
    return table


def test_read_ratings_csv_paths_and_stripping(tmp_path):
    text = " rater , image , score \n a , x.jpg , 2 \n\n b,/abs/y.jpg,3,\n"
    _write(str(tmp_path / "r.csv"), text)
    data = read_ratings(str(tmp_path / "r.csv"), check_files=False)
    # Relative images resolve against the CSV's folder; absolute ones are kept.
    assert data.X == [str(tmp_path / "x.jpg"), "/abs/y.jpg"]
    assert data.groups.tolist() == ["a", "b"] and data.y.tolist() == [2.0, 3.0]
    data = read_ratings(str(tmp_path / "r.csv"), image_root=tmp_path / "sub", check_files=False)
    assert data.X[0] == str(tmp_path / "sub" / "x.jpg")


def test_missing_columns_lists_found_ones():
    with pytest.raises(ValueError) as err:
        read_ratings({"user": ["a"], "image": ["x"], "mos": [1]}, check_files=False)
    assert "['rater', 'score']" in str(err.value) and "['user', 'image', 'mos']" in str(err.value)


def test_missing_files_count_and_first_names(tmp_path):
    images = [f"img{i}.jpg" for i in range(7)]
    _jpeg(str(tmp_path / images[0]))
    table = {"rater": ["a"] * 7, "image": images, "score": [1] * 7}
    with pytest.raises(FileNotFoundError) as err:
        read_ratings(table, image_root=tmp_path)
    msg = str(err.value)
    assert "6 of the 7 image file(s)" in msg and str(tmp_path) in msg
    assert all(name in msg for name in images[1:6]) and "img6.jpg" not in msg
    assert "img0.jpg" not in msg


def test_a_folder_named_as_an_image_is_called_a_folder(tmp_path):
    # "1 of the 2 image file(s) ... are missing under ...: photos": it is a folder
    _jpeg(str(tmp_path / "a.jpg"))
    (tmp_path / "photos").mkdir()
    table = {"rater": ["a"] * 2, "image": ["a.jpg", "photos"], "score": [1, 2]}
    with pytest.raises(FileNotFoundError, match=r"missing under .*: photos\. Of these, .*"
                                                r"photos is a folder, not an image file"):
        read_ratings(table, image_root=tmp_path)


@pytest.mark.parametrize("check_files", [True, False])
def test_an_image_url_is_refused_as_a_url(tmp_path, check_files):
    # "missing under <folder>: https:/example.com/57_start.jpg": joined onto the image
    # folder, mangled, and called missing
    _jpeg(str(tmp_path / "a.jpg"))
    _write(str(tmp_path / "t.csv"), "rater,image,score\na,a.jpg,3\n"
                                    "a,https://example.com/57_start.jpg,4\n")
    with pytest.raises(ValueError, match=r"t\.csv: the image column 'image' holds 1 URL\(s\), "
                                         r"at line 3: https://example\.com/57_start\.jpg\. "
                                         "URLs are not supported: download the images"):
        read_ratings(str(tmp_path / "t.csv"), check_files=check_files)


def test_a_mistyped_image_folder_is_named_once(tmp_path):
    # "55 of the 55 image file(s) ... are missing under .../imgs", then 10 names
    table = {"rater": ["a"] * 3, "image": ["x.jpg", "y.jpg", "z.jpg"], "score": [1] * 3}
    with pytest.raises(FileNotFoundError, match=r"the image folder .*imgs does not exist "
                                                r"\(none of the 3 image file\(s\)"):
        read_ratings(table, image_root=tmp_path / "imgs")


def test_a_relative_image_folder_found_beside_the_table_is_pointed_to(tmp_path,
                                                                      monkeypatch):
    # image_root="images" is taken from the current directory, where the table's own
    # folder is the default: the error did not say that images/ lay beside the table
    data = tmp_path / "data"
    os.makedirs(data / "images")
    _jpeg(str(data / "images" / "a.jpg"))
    _write(str(data / "t.csv"), "rater,image,score\na,a.jpg,3\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape(
            "a relative image folder is taken from the current directory, and beside the "
            f"table there is {data / 'images'}: give that path.")):
        read_ratings(str(data / "t.csv"), image_root="images")
    assert read_ratings(str(data / "t.csv"), image_root=data / "images").y.tolist() == [3.0]


def test_a_missing_absolute_path_is_named_where_it_points(tmp_path):
    # "missing under <the CSV's folder>" sent the reader to a folder the absolute path
    # has nothing to do with.
    _jpeg(str(tmp_path / "here.jpg"))
    gone = str(tmp_path / "elsewhere" / "nope.jpg")
    _write(str(tmp_path / "data" / "t.csv"),
           f"rater,image,score\na,{tmp_path / 'here.jpg'},3\na,{gone},4\n")
    with pytest.raises(FileNotFoundError) as err:
        read_ratings(str(tmp_path / "data" / "t.csv"))
    msg = str(err.value)
    assert f"1 of the 2 image file(s) named in {tmp_path / 'data' / 't.csv'} are missing at " \
           f"the absolute path(s) the table gives: {gone}." in msg
    assert "missing under" not in msg and "used as they are" in msg
    assert "check_files=False" in msg  # one of two: the other can still be trained on
    # a relative name missing beside it is named under the image folder
    _write(str(tmp_path / "data" / "u.csv"), f"rater,image,score\na,{gone},3\na,x.jpg,4\n")
    with pytest.raises(FileNotFoundError, match=r"are missing: 1 under .*data \(x\.jpg\) and "
                                                 r"1 at the absolute path\(s\) the table gives"):
        read_ratings(str(tmp_path / "data" / "u.csv"))


def test_images_found_in_a_subfolder_are_pointed_at_and_none_skipped(tmp_path):
    # The shipped layout: ratings.csv beside images/, names relative to images/. The
    # message listed 55 names "missing" and offered to train without all of them.
    for name in ("a.jpg", "b.jpg"):
        _jpeg(str(tmp_path / "images" / name))
    (tmp_path / "other").mkdir()
    _write(str(tmp_path / "ratings.csv"), "rater,image,score\nr,a.jpg,3\nr,b.jpg,4\n")
    with pytest.raises(FileNotFoundError) as err:
        read_ratings(str(tmp_path / "ratings.csv"))
    msg = str(err.value)
    images = str(tmp_path / "images")
    assert f"found under {images}: pass image_root={images!r} (--image-root {images} on " \
           "the command line)" in msg
    assert "check_files=False" not in msg and "on_error" not in msg
    assert read_ratings(str(tmp_path / "ratings.csv"), image_root=images).y.tolist() == [3, 4]
    # names found nowhere: the usual advice, still without skipping every image
    _write(str(tmp_path / "none.csv"), "rater,image,score\nr,zzz.jpg,3\n")
    with pytest.raises(FileNotFoundError) as err:
        read_ratings(str(tmp_path / "none.csv"))
    assert "Check the image folder (image_root=" in str(err.value)
    assert "found under" not in str(err.value) and "check_files=False" not in str(err.value)


def test_images_named_from_the_working_directory_are_pointed_at(tmp_path, monkeypatch):
    # "data/imgs/a.jpg" in data/t.csv, as written from the folder one runs in: the
    # message said "missing under <data>" and left the user to guess image_root='.'.
    for name in ("a.jpg", "b.jpg"):
        _jpeg(str(tmp_path / "data" / "imgs" / name))
    _write(str(tmp_path / "data" / "t.csv"),
           "rater,image,score\nr,data/imgs/a.jpg,3\nr,data/imgs/b.jpg,4\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        read_ratings(os.path.join("data", "t.csv"))
    msg = str(err.value)
    assert f"found relative to the current directory ({tmp_path}): pass image_root='.' " \
           "(--image-root . on the command line)." in msg
    assert "Check the image folder" not in msg and "check_files=False" not in msg
    assert read_ratings(os.path.join("data", "t.csv"), image_root=".").y.tolist() == [3, 4]
    # run from elsewhere, the names are found nowhere: the usual advice
    monkeypatch.chdir(tmp_path / "data")
    with pytest.raises(FileNotFoundError) as err:
        read_ratings("t.csv")
    assert "current directory" not in str(err.value)
    assert "Check the image folder (image_root=" in str(err.value)


def test_duplicates_mean_or_error():
    table = _table(rater=["a", "a", "b", "a"], image=["x.jpg", "y.jpg", "x.jpg", "x.jpg"])
    # averaged with a word: counts then differ from a data set's published ones
    with pytest.warns(PIAAWarning, match=r"rates 1 \(rater, image\) pair\(s\) more than "
                      r"once; their 2 ratings are averaged into 1 \(duplicates='mean'\): "
                      r"'a' on 'x.jpg' at row 0/row 3") as record:
        data = read_ratings(table, check_files=False)
    assert len(record) == 1 and record[0].filename == __file__
    assert data.groups.tolist() == ["a", "a", "b"]
    assert data.y.tolist() == [2.5, 2.0, 3.0]  # rows 0 and 3 averaged, at row 0
    match = r"1 \(rater, image\) pair.*'a' on 'x.jpg' at row 0/row 3"
    with pytest.raises(ValueError, match=match):
        read_ratings(table, duplicates="error", check_files=False)
    with pytest.raises(ValueError, match="duplicates must be"):
        read_ratings(table, duplicates="first", check_files=False)


def test_non_numeric_scores_name_rows(tmp_path):
    _write(str(tmp_path / "r.csv"), "rater,image,score\na,x.jpg,3\na,y.jpg,good\nb,x.jpg,nan\n")
    with pytest.raises(ValueError) as err:
        read_ratings(str(tmp_path / "r.csv"), check_files=False)
    assert "2 value(s)" in str(err.value) and "line 3 ('good')" in str(err.value)
    assert "line 4 ('nan')" in str(err.value)
    with pytest.raises(ValueError, match=r"row 1 \(nan\)"):
        read_ratings(_table(score=[1, np.nan, 2, 3]), check_files=False)


def test_too_few_images_lists_raters():
    table = _table(rater=["a", "b", "b", "c"])
    match = r"2 rater\(s\).*fewer than 2 images: 'a' \(1\), 'c' \(1\)"
    with pytest.raises(ValueError, match=match):
        read_ratings(table, min_images=2, check_files=False)
    assert len(read_ratings(table, min_images=1, check_files=False).tasks) == 3


def test_empty_and_malformed_tables(tmp_path):
    _write(str(tmp_path / "empty.csv"), "")
    with pytest.raises(ValueError, match="empty.csv is empty"):
        read_ratings(str(tmp_path / "empty.csv"))
    _write(str(tmp_path / "header.csv"), "rater,image,score\n")
    with pytest.raises(ValueError, match="no ratings"):
        read_ratings(str(tmp_path / "header.csv"))
    _write(str(tmp_path / "short.csv"), "rater,image,score\na,x.jpg\n")
    with pytest.raises(ValueError, match="line 2: 2 field"):
        read_ratings(str(tmp_path / "short.csv"))
    with pytest.raises(ValueError, match="'rater' is empty at row 1"):
        read_ratings(_table(rater=["a", " ", "b", "b"]), check_files=False)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_ratings(str(tmp_path / "nope.csv"))
    with pytest.raises(TypeError, match="CSV path"):
        read_ratings(42)


class _FakeFrame:
    """Just enough of a pandas DataFrame: columns and to_numpy."""

    def __init__(self, table):
        self.columns = list(table)
        self.values = np.array(list(zip(*table.values())), dtype=object)

    def to_numpy(self):
        return self.values


def test_user_tables_not_modified():
    table = _table(score=["1", " 2", 3.0, 4])
    before = copy.deepcopy(table)
    frame = _FakeFrame(_table(rater=[" a", "a", "b", "b"]))
    frame_before = frame.values.copy()
    read_ratings(table, check_files=False)
    data = read_ratings(frame, check_files=False)
    assert table == before
    assert np.array_equal(frame.values, frame_before)
    assert data.groups.tolist() == ["a", "a", "b", "b"] and data.y.tolist() == [1, 2, 3, 4]


def test_meta_regressor_fits_reader_output(flickr):
    data = read_flickr_aes(flickr, split=None)
    # query_size=2: a one-image query set fails in the head's BatchNorm in train mode.
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=2, query_size=2, random_state=0)
    meta.fit(data.tasks)
    assert meta.raters_ == data.tasks.raters


def test_read_personality_table_and_its_errors(tmp_path):
    from sklearn_piaa.datasets import read_personality

    path = tmp_path / "traits.csv"
    path.write_text("rater,o,c,e,a,n\nu1,0.5,-0.5,0,1,-1\nu2,0,0,0,0,0\nu9,1,1,1,1,1\n")
    table = read_personality(path, ["u1", "u2"])
    assert sorted(table) == ["u1", "u2", "u9"]
    np.testing.assert_allclose(table["u1"], [0.5, -0.5, 0, 1, -1])
    with pytest.raises(ValueError, match=r"no traits for 1 rater\(s\)"):
        read_personality(path, ["u1", "u3"])
    path.write_text("rater,o,c,e,a,n\nu1,0.5,-0.5,0,1,3\n")
    with pytest.raises(ValueError, match=r"line 2: 'n' is '3'"):
        read_personality(path, ["u1"])
    with pytest.raises(FileNotFoundError, match="personality file not found"):
        read_personality(tmp_path / "missing.csv", ["u1"])


def test_read_personality_matches_rater_ids_as_the_readers_do(tmp_path):
    # 7.0 (a pandas id column that held a blank), b"ann" and "José" in another Unicode
    # form are the file's raters, as everywhere else; they were "no traits for"
    from sklearn_piaa.datasets import read_personality

    path = tmp_path / "traits.csv"
    path.write_text("rater,o,c,e,a,n\n7,0.5,0,0,0,0\nann,0,0.5,0,0,0\n"
                    "Jose\u0301,0,0,0.5,0,0\n", encoding="utf-8")
    table = read_personality(path, [7.0, b"ann", "Jos\u00e9"])
    np.testing.assert_allclose(table[7.0], [0.5, 0, 0, 0, 0])
    np.testing.assert_allclose(table[b"ann"], [0, 0.5, 0, 0, 0])
    np.testing.assert_allclose(table["Jos\u00e9"], [0, 0, 0.5, 0, 0])
    assert len(table) == 3
    with pytest.raises(ValueError, match=r"got the string 'ann'.*give \['ann'\]"):
        read_personality(path, "ann")
    path.write_text("rater,o,c,e,a,n\nJose\u0301,0,0,0,0,0\nJos\u00e9,0,0,0,0,0\n",
                    encoding="utf-8")
    with pytest.raises(ValueError, match="line 3: rater .* appears a second time"):
        read_personality(path, ["Jos\u00e9"])


def test_read_personality_of_paras_user_table_and_trait_cols(tmp_path):
    from sklearn_piaa.datasets import read_personality

    # PARA's PARA-UserInfo.csv layout: user columns, then five personality-* columns
    path = tmp_path / "PARA-UserInfo.csv"
    path.write_text("userId,age,gender,photographyExperience,personality-E,personality-A,"
                    "personality-N,personality-O,personality-C\n"
                    "u1,25,male,beginner,0.5,-0.5,0,1,-1\n")
    table = read_personality(path, ["u1"], rater_col="userId")
    np.testing.assert_allclose(table["u1"], [0.5, -0.5, 0, 1, -1])
    order = ["personality-O", "personality-C", "personality-E", "personality-A",
             "personality-N"]
    table = read_personality(path, ["u1"], rater_col="userId", trait_cols=order)
    np.testing.assert_allclose(table["u1"], [1, -1, 0.5, -0.5, 0])
    with pytest.raises(ValueError, match=r"lacks the trait column\(s\) \['openness'\]"):
        read_personality(path, ["u1"], rater_col="userId", trait_cols=["openness", *order[1:]])
    with pytest.raises(ValueError, match="five distinct columns"):
        read_personality(path, ["u1"], rater_col="userId", trait_cols=order[:4])
    path.write_text("userId,age,gender,personality-E,personality-A,personality-N,"
                    "personality-O\nu1,25,male,0,0,0,0\n")
    with pytest.raises(ValueError, match="6 column\\(s\\) besides 'userId'.*trait_cols"):
        read_personality(path, ["u1"], rater_col="userId")


def test_a_train_list_naming_no_rater_is_refused(flickr):
    # R's write.csv quotes ids (and adds a row-name column): the quotes are not the ids
    _write(str(flickr / "test_workers.csv"), '"","worker"\n"1","A1TRAINONE"\n')
    _write(str(flickr / "train_workers.csv"), '"","worker"\n"1","A2TRAINTWO"\n')
    with pytest.warns(PIAAWarning, match="neither the train nor the test"):
        data = read_flickr_aes(flickr)
    assert data.test_raters == ["A1TRAINONE"] and data.train_raters == ["A2TRAINTWO"]
    # a train list none of whose ids occurs would leave "no train side", which a caller
    # could read as "no split" and train on the test raters
    _write(str(flickr / "train_workers.csv"), "worker\nNOBODY\n")
    with pytest.warns(PIAAWarning), pytest.raises(ValueError, match="train side.*empty"):
        read_flickr_aes(flickr)


def test_the_meta_train_command_refuses_a_data_set_of_test_raters_only(tmp_path, capsys,
                                                                        monkeypatch):
    from sklearn_piaa.cli import console
    monkeypatch.delenv("SKLEARN_PIAA_TRACEBACK", raising=False)
    rows = ["worker,image,MOS"]
    for worker in ["w1", "w2", "w3"]:
        for k, mos in enumerate([3.5, 5, 1.2, 2.2]):
            _jpeg(str(tmp_path / "images" / worker / str(int(mos)) / f"p{k}.jpg"))
            rows.append(f"{worker},p{k}.jpg,{mos}")
    _write(str(tmp_path / "ratings.csv"), "\n".join(rows) + "\n")
    prior = tmp_path / "prior.pt"
    assert console(["meta-train", str(tmp_path), "--format", "real-cur", "--backbone",
                    "tiny_cnn", "--n-iterations", "1", "--support-size", "2",
                    "--query-size", "1", "-o", str(prior), "--quiet"]) == 1
    assert "all 3 raters of the data are test raters" in capsys.readouterr().err
    assert not prior.exists()


def test_ids_and_paths_given_as_bytes_are_read_as_text(tmp_path):
    # columns of an HDF5 file hold bytes: str() made rater "b'ann'" and image "b'x.jpg'"
    _jpeg(str(tmp_path / "x.jpg"))
    _jpeg(str(tmp_path / "y.jpg"), seed=1)
    data = read_ratings({"rater": np.array([b"ann", b"bob"]),
                         "image": np.array([b"x.jpg", b"y.jpg"]), "score": [1, 2]},
                        image_root=tmp_path)
    assert data.groups.tolist() == ["ann", "bob"]
    assert data.X == [str(tmp_path / "x.jpg"), str(tmp_path / "y.jpg")]
    with pytest.raises(ValueError, match="column 'rater' is empty"):
        read_ratings({"rater": [b" ", b"bob"], "image": ["x.jpg", "y.jpg"], "score": [1, 2]},
                     image_root=tmp_path)


def test_a_filtered_dataframe_names_rows_by_index_label():
    # df.loc finds a row of a filtered frame by its label: position 1 is label 11 here
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"rater": ["a", "a", "b", "b"], "image": ["x.jpg", "y.jpg"] * 2,
                          "score": [1.0, np.nan, 2.0, 3.0]}, index=[10, 11, 12, 13])
    with pytest.raises(ValueError, match=r"index 11 \(nan\)"):
        read_ratings(frame, check_files=False)
    with pytest.raises(ValueError, match=r"row 1 \(nan\)"):
        read_ratings(frame.reset_index(drop=True), check_files=False)
    frame.loc[11, "score"] = 4.0
    frame.loc[12, "rater"] = " "
    with pytest.raises(ValueError, match="'rater' is empty at index 12"):
        read_ratings(frame, check_files=False)


@pytest.mark.parametrize("cell, on_disk", [("a.jpg", "a.JPG"), ("a", "a.jpg"),
                                           ("sub\\a.jpg", "sub/a.jpg")],
                         ids=["case", "extension", "windows-separator"])
def test_a_missing_image_names_the_file_spelled_otherwise(tmp_path, cell, on_disk):
    # The message said only "missing": the name on disk differed in case, extension or
    # separator from the table's, and nothing pointed at it.
    _jpeg(str(tmp_path / on_disk))
    _write(str(tmp_path / "t.csv"), f"rater,image,score\nr,{cell},3\n")
    with pytest.raises(FileNotFoundError, match=f"{os.path.basename(on_disk)!r} exists"):
        read_ratings(str(tmp_path / "t.csv"))


def test_split_ids_given_from_python_are_stripped(tmp_path):
    (tmp_path / "AADB_AllinAll.csv").write_text(
        "imgName,workerID,score\na.jpg,7,2\nb.jpg,8,4\n")
    data = read_aadb(tmp_path, test_workers=[" 8 "], check_files=False)
    assert (data.train_raters, data.test_raters) == (["7"], ["8"])


def test_a_relative_image_root_with_a_format_is_taken_from_the_current_directory(
        tmp_path, monkeypatch):
    from sklearn_piaa._cli_common import read_data

    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "FLICKR-AES_image_labeled_by_each_worker.csv").write_text(
        "worker, imagePair, score\nw1, x.jpg, 3\nw2, x.jpg, 5\n")
    (ds / "test_workers.csv").write_text("worker\nw2\n")
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "x.jpg")
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(format="flickr-aes", image_root="photos", rater_col="rater",
                              image_col="image", score_col="score", test_raters=None)
    data = read_data(str(ds), args)
    assert data.X == [str(tmp_path / "photos" / "x.jpg")] * 2


def test_meta_train_options_reach_the_saved_prior(tmp_path):
    from sklearn_piaa import load_model
    from sklearn_piaa.cli import main

    csv_path = ratings_folder(tmp_path, n_images=12, n_raters=4)
    prior = tmp_path / "p.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--n-iterations", "1", "--support-size", "4", "--query-size", "2", "--quiet",
          "--inner-steps", "2", "--inner-lr", "3e-3", "--outer-lr", "0.05",
          "--tasks-per-batch", "2", "--random-state", "7", "--score-range", "1,5"])
    meta = load_model(prior)
    assert meta.inner_steps == 2
    assert meta.inner_lr == 3e-3
    assert meta.outer_lr == 0.05
    assert meta.tasks_per_batch == 2
    assert meta.random_state == 7
    assert tuple(meta.score_range) == (1.0, 5.0)


def test_quoted_ids_of_a_one_column_split_file_are_unquoted(tmp_path):
    from sklearn_piaa.datasets import read_flickr_aes

    (tmp_path / "FLICKR-AES_image_labeled_by_each_worker.csv").write_text(
        "worker, imagePair, score\nw1, x.jpg, 3\nw2, x.jpg, 5\n")
    (tmp_path / "test_workers.csv").write_text("worker\n'w2'\n")
    data = read_flickr_aes(tmp_path, check_files=False)
    assert (data.train_raters, data.test_raters) == (["w1"], ["w2"])


def test_aadb_results_table_messages_name_the_files_own_lines(tmp_path):
    from sklearn_piaa import PIAAWarning

    url = "http://farm1.staticflickr.com/255/1_a_b.jpg"
    (tmp_path / "AADB_AllinAll.csv").write_text(
        f"WorkerId,Input.image_url1,Answer.overallScore1\nw1,{url},3\nw1,{url},5\n")
    with pytest.warns(PIAAWarning, match=r"at line 2/line 3"):
        read_aadb(tmp_path, check_files=False)


def test_a_train_workers_file_alone_makes_every_other_worker_a_test_worker(tmp_path):
    from sklearn_piaa.datasets import read_flickr_aes

    (tmp_path / "FLICKR-AES_image_labeled_by_each_worker.csv").write_text(
        "worker, imagePair, score\nw1, x.jpg, 3\nw2, x.jpg, 5\n")
    (tmp_path / "train_workers.csv").write_text("worker\nw1\n")
    data = read_flickr_aes(tmp_path, check_files=False)
    assert (data.train_raters, data.test_raters) == (["w1"], ["w2"])


def test_aadb_scores_off_its_scale_are_warned_of(tmp_path):
    # a copy rescaled to 0-100: read as it is, but said
    _write(str(tmp_path / "AADB_AllinAll.csv"),
           "imgName,workerID,score\na.jpg,7,20\nb.jpg,8,100\nc.jpg,8,3\n")
    with pytest.warns(PIAAWarning, match=r"2 of 3 scores lie outside AADB's 1-5 scale "
                                         r"\(from 3 to 100"):
        data = read_aadb(tmp_path, check_files=False)
    assert data.y.tolist() == [20.0, 100.0, 3.0]
    # on the scale: nothing said
    _write(str(tmp_path / "AADB_AllinAll.csv"),
           "imgName,workerID,score\na.jpg,7,1\nb.jpg,8,5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        read_aadb(tmp_path, check_files=False)
