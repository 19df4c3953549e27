"""``samdata export ome-zarr`` through typer's runner: a phantom store exported and read back, and the exit codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from typer.testing import CliRunner

from samdata.cli.main import app

runner = CliRunner()


def test_export_ome_zarr_command(tmp_path: Path, phantoms: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "omezarr"
    res = runner.invoke(app, ["ingest", str(phantoms), "--store", str(store), "--min-voxels", "5", "--min-pixels", "2"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export", "--help"])
    assert res.exit_code == 0 and "ome-zarr" in res.output

    res = runner.invoke(app, ["export", "ome-zarr", str(store), str(out), "--case", "phantom_001"])
    assert res.exit_code == 0, res.output
    image = out / "phantom_001.ome.zarr"
    assert str(image) in res.stdout and f"napari {image}" in res.stdout
    group = zarr.open_group(image, mode="r")
    from storage import SliceStore

    case = SliceStore.open(store).read_case("phantom_001")
    np.testing.assert_array_equal(group["s0"][:], case.image)
    properties = group["labels/label"].attrs["ome"]["image-label"]["properties"]
    assert {p["name"] for p in properties} == {n for v, n in case.meta.label_names.items() if v > 0}

    res = runner.invoke(app, ["export", "ome-zarr", str(store), str(out), "--case", "phantom_001"])
    assert res.exit_code == 2 and "--overwrite" in res.output  # exists: cannot start as called
    res = runner.invoke(app, ["export", "ome-zarr", str(store), str(out), "--case", "nope"])
    assert res.exit_code == 2 and "'nope'" in res.output
    res = runner.invoke(
        app, ["export", "ome-zarr", str(store), str(tmp_path / "v4"), "--ngff", "0.4", "--case", "phantom_000"]
    )
    assert res.exit_code == 0, res.output
    assert zarr.open_group(tmp_path / "v4" / "phantom_000.ome.zarr", mode="r").metadata.zarr_format == 2
