"""samdata evaluate and predict: a run folder that is not a run is refused with one clear line.

The commands' runs with a model stay in tests/training/ (test_evaluate.py, test_predict.py, test_compare.py,
test_unet.py), where the module fixtures that build those runs live.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from samdata.cli.main import app
from samdata.io.readers import write_nifti
from samdata.io.segmentations import OUTPUT_FORMATS


def test_cli_evaluate_missing_run_dir_is_a_clear_error(tmp_path: Path):
    missing = tmp_path / "no-such-run"
    result = CliRunner().invoke(app, ["evaluate", str(missing), "--split", "test"])
    assert result.exit_code == 2 and str(missing) in result.output and "not a samdata run directory" in result.output


def test_cli_predict_names_every_output_format_and_refuses_dicom_seg_of_a_file_before_the_model(tmp_path: Path):
    result = CliRunner().invoke(app, ["predict", "--help"])
    assert result.exit_code == 0 and all(name in result.output for name in OUTPUT_FORMATS)
    image = write_nifti(np.arange(8, dtype=np.int16).reshape(2, 2, 2), np.eye(4), tmp_path / "ct.nii.gz")
    args = ["predict", str(tmp_path / "no-run"), "--image", str(image), "--box", "0,0,1,1@0"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "p.dcm"), "--format", "dicom-seg"])
    said = " ".join(result.output.split())  # the message as one line, however the console wrapped it
    assert result.exit_code == 2 and "needs a DICOM series" in said and "not a samdata run" not in said
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "p.dcm"), "--format", "rtstruct"])
    assert result.exit_code == 2 and "unknown output format 'rtstruct'" in " ".join(result.output.split())
