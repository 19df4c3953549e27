"""Tests of samdata.io.registry: every reader serves its endings only, the lookup and its errors."""

from __future__ import annotations

import pytest

from samdata.errors import CaseNotFoundError, InputFileError
from samdata.io.headers import read_header
from samdata.io.readers import read_volume
from samdata.io.registry import (
    READERS,
    SUPPORTED_SUFFIXES,
    SUPPORTED_TEXT,
    reader_for,
    stem_of,
    suffix_of,
)

EXPECTED_TEXT = (
    ".nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd, .png, .jpg, .jpeg, .tif, .tiff, .bmp, "
    "or a folder holding one DICOM series"
)


def test_the_supported_list_comes_from_the_readers_in_order():
    assert SUPPORTED_SUFFIXES == tuple(e for reader in READERS for e in reader.endings)
    assert SUPPORTED_TEXT == EXPECTED_TEXT
    assert len(set(SUPPORTED_SUFFIXES)) == len(SUPPORTED_SUFFIXES)  # no ending served twice


@pytest.mark.parametrize("kind", READERS, ids=lambda kind: kind.__name__)
def test_each_reader_serves_its_endings_and_no_other_reader_does(tmp_path, kind):
    for ending in kind.endings:
        path = tmp_path / f"Case_1{ending.upper()}"  # endings match whatever the case
        path.write_bytes(b"")
        assert suffix_of(path) == ending and stem_of(path) == "Case_1"
        assert type(reader_for(path)) is kind
        assert [other for other in READERS if other().serves(path)] == [kind]
        (tmp_path / f"folder{ending}").mkdir()  # a folder is never a file format's, whatever its name
        assert not kind().serves(tmp_path / f"folder{ending}")
    if kind.folder:
        assert type(reader_for(tmp_path)) is kind


def test_unknown_and_missing_paths_are_refused_by_read_and_header_alike(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    (tmp_path / ".nii").write_bytes(b"")  # a hidden file named like an ending has no ending
    for read in (read_volume, read_header):
        with pytest.raises(InputFileError) as info:
            read(tmp_path / "data.csv")
        assert str(info.value) == f"{tmp_path / 'data.csv'}: unknown extension '.csv'; supported: {EXPECTED_TEXT}"
        with pytest.raises(InputFileError, match=r"unknown extension ''"):
            read(tmp_path / ".nii")
        with pytest.raises(CaseNotFoundError, match="nope.csv: no such file or folder"):
            read(tmp_path / "nope.csv")
