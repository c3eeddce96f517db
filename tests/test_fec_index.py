"""The FEC CSV's binary index beside it: same table as parsing, used when current,
rebuilt when the CSV changes."""
import logging
import os

import numpy as np
import pytest
from helpers import fec_like

from fec.data import fec_index
from fec.data.fec_csv import read_fec_csv
from fec.data.fec_index import index_path, load_fec_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench():
    return fec_like  # the FEC-like CSV writer tools/benchmark.py uses


def assert_same_table(a, b):
    assert a.faces_url == b.faces_url and a.annotator_names == b.annotator_names and a.skipped == b.skipped
    for k in ("faces_box", "triplets", "types", "votes", "annotators", "label", "agreement", "line"):
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype and np.array_equal(x, y), k


def test_index_is_the_parsed_table_and_is_used(tmp_path, bench, monkeypatch):
    csv = str(tmp_path / "train.csv")
    bench.write_fec_like_csv(csv, 500, seed=3)
    with open(csv, "a") as f:
        f.write("not,a,row\n")  # skipped and counted, as the dataset reads it
    parsed = read_fec_csv(csv, strict=False)
    assert parsed.skipped
    first = load_fec_table(csv, strict=False)
    assert os.path.isfile(index_path(csv))
    assert_same_table(first, parsed)

    def no_parsing(*args, **kwargs):
        raise AssertionError("the CSV was parsed although its index is current")

    monkeypatch.setattr(fec_index, "read_fec_csv", no_parsing)
    cached = load_fec_table(csv, strict=False)
    assert_same_table(cached, parsed)
    assert cached.path == csv


def test_index_is_rebuilt_when_the_csv_changes(tmp_path, bench):
    csv = str(tmp_path / "train.csv")
    bench.write_fec_like_csv(csv, 300, seed=1)
    assert len(load_fec_table(csv)) == 300
    stat = os.stat(csv)
    # other content, same size and same modification time: the content hash tells
    bench.write_fec_like_csv(csv, 300, seed=2)
    if os.path.getsize(csv) == stat.st_size:
        os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert_same_table(load_fec_table(csv), read_fec_csv(csv))
    bench.write_fec_like_csv(csv, 200, seed=2)
    assert len(load_fec_table(csv)) == 200


def test_damaged_index_is_rebuilt(tmp_path, bench):
    csv = str(tmp_path / "train.csv")
    bench.write_fec_like_csv(csv, 100, seed=1)
    load_fec_table(csv)
    with open(index_path(csv), "r+b") as f:
        f.truncate(100)
    assert_same_table(load_fec_table(csv), read_fec_csv(csv))
    assert os.path.getsize(index_path(csv)) > 100


def test_read_only_folder_parses_without_index(tmp_path, bench, caplog, monkeypatch):
    csv = str(tmp_path / "train.csv")
    bench.write_fec_like_csv(csv, 100, seed=1)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fec_index, "_write", refuse)
    with caplog.at_level(logging.WARNING, logger="fec.data.fec_index"):
        table = load_fec_table(csv)
    assert len(table) == 100 and not os.path.exists(index_path(csv))
    assert "cannot write the index" in caplog.text


def test_strings_round_trip_with_non_ascii():
    strings = ["http://a.org/é.jpg", "", "http://b.org/日本.jpg", "plain"]
    assert fec_index._unpack_strings(*fec_index._pack_strings(strings)) == strings
