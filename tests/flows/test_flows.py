"""The flows end to end on tiny phantoms under one Prefect test server: build-and-train with synthetic
pairs and a report, faults reported in artifacts, parameter validation, resume after a crash, and the
watched-folder flow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.exceptions import ParameterTypeError

from flows.artifacts import artifact_key
from flows.build import build_and_train, watch_flow
from flows.export import ExportParams
from flows.ingest import ingest_flow
from flows.params import IngestParams, MixtureParams, PromptParams, SourceParams
from flows.synthesize import SynthParams
from flows.train import train_flow
from flows.train_params import EvalParams, TrainParams
from pipelines.mixtures import load_mixture
from storage import SliceStore

INGEST = IngestParams(modality="CT", window="abdomen", min_voxels=20, min_pixels=10)
TINY_TRAIN = TrainParams(model="tiny", steps=4, batch_size=2, val_max=4, log_every=1, save_every=2, device="cpu")


def latest_artifact(key: str) -> str:
    """The markdown of the newest artifact with ``key``."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key!r}"
    return str(max(found, key=lambda a: a.created).data)


def test_build_and_train_end_to_end(phantoms: Path, tmp_path: Path) -> None:
    out, store = tmp_path / "out", str(tmp_path / "store")
    synth = SynthParams(kind="deform", generator_id="deform_liver", labels=("liver",), count=4)
    result = build_and_train(
        sources=[SourceParams(path=str(phantoms), ingest=INGEST)],
        store=store,
        out=str(out),
        prompts=PromptParams(name="boxes"),
        mixture=MixtureParams(name="mix", splits=(0.5, 0.5, 0.0), synthetic=0.5),
        train=TINY_TRAIN,
        evaluate=EvalParams(split="val"),
        synthesize=synth,
        report="report",
    )
    assert len(result["ingest"][0]["added"]) == 4 and result["synthesize"]["requested"] == 4
    assert result["prompts"]["n_objects"] > 0 and result["mixture"]["counts"]["val"]["real"] == 2
    trained = result["train"]
    assert trained["step"] == 4 and Path(trained["curve"]).is_file()
    assert set(trained["evaluation"]["overall"]) == {"zero_shot", "adapted"}
    summaries = trained["evaluation"]["summaries"]
    assert set(summaries) == {"zero_shot", "adapted"} and all(Path(p).is_file() for p in summaries.values())
    index = Path(result["report"])
    page = index.read_text()
    for figure in ("samples_1.png", "training_curve.png", "zero_shot_vs_adapted.png"):
        assert (index.parent / figure).is_file() and f'src="{figure}"' in page
    assert "Zero-shot vs adapted" in page and "mixture mix" in page
    assert result["synthesize"]["accepted"] > 0 and (index.parent / "synthetic.png").is_file()
    assert "the real slice it was made from" in page and "made from" in page
    stages = ("ingest", "synthetic pairs", "prompts and mixture", "training", "evaluation", "report")
    assert tuple(result["memory"]) == stages and trained["memory"].keys() == {"training", "evaluation"}
    assert all(result["memory"][s]["peak_mb"] > 100 for s in stages) and "Peak resident memory" in page
    train_md = latest_artifact(artifact_key("train", out / "run"))
    assert "| dice |" in train_md and "best_worst.png" in train_md and "training_curve.png" in train_md
    assert summaries["adapted"] in train_md  # the artifact lists each model's summary.json
    assert "| phantom_000 | added |" in latest_artifact(artifact_key("ingest", store))
    assert "accepted" in latest_artifact(artifact_key("synthesize", store))

    again = build_and_train(
        sources=[SourceParams(path=str(phantoms), ingest=INGEST)],
        store=store,
        out=str(out),
        prompts=PromptParams(name="boxes"),
        mixture=MixtureParams(name="mix"),
        train=None,
        evaluate=None,
        synthesize=synth,
        report=None,
        exports=[ExportParams(format="ome-zarr", cases=["phantom_000"]), ExportParams(format="nnunet")],
    )
    assert again["ingest"][0]["added"] == [] and len(again["ingest"][0]["skipped"]) == 4
    omezarr, nnunet = again["exports"]
    assert omezarr["paths"] == [str(out / "ome-zarr" / "phantom_000.ome.zarr")]
    assert (out / "ome-zarr" / "phantom_000.ome.zarr" / "zarr.json").is_file()
    dataset = Path(nnunet["paths"][0])
    assert dataset.parent == out / "nnunet" and json.loads((dataset / "dataset.json").read_text())["numTraining"] > 0
    assert "phantom_000.ome.zarr" in latest_artifact(omezarr["artifact"])
    assert f"nnUNet_raw={out / 'nnunet'}" in latest_artifact(nnunet["artifact"])
    assert (
        again["synthesize"]["accepted"] == 0
        and again["synthesize"]["already_stored"] + again["synthesize"]["generated"] == 4
    )


def test_failing_case_is_reported_and_others_go_on(phantoms: Path, tmp_path: Path) -> None:
    broken = sorted((phantoms / "imagesTr").iterdir())[1]
    broken.write_bytes(b"not a NIfTI file\n" * 8)
    report = ingest_flow(str(phantoms), str(tmp_path / "store"), INGEST)
    case_id = broken.name.split(".")[0]
    assert set(report["failed"]) == {case_id} and len(report["added"]) == 3
    markdown = latest_artifact(artifact_key("ingest", tmp_path / "store"))
    assert f"| {case_id} | failed |" in markdown and broken.name in markdown
    assert SliceStore.open(tmp_path / "store").verify() == []


def test_parameters_are_validated_before_the_run(phantoms: Path, tmp_path: Path) -> None:
    with pytest.raises(ParameterTypeError, match="unknown window 'abdomn'"):
        ingest_flow(str(phantoms), str(tmp_path / "store"), {"window": "abdomn"})
    with pytest.raises(ParameterTypeError, match="cases_per_task"):
        ingest_flow(str(phantoms), str(tmp_path / "store"), INGEST, cases_per_task=0)
    with pytest.raises(ParameterTypeError, match="adapter spec"):
        build_and_train(
            sources=[{"path": str(phantoms)}],
            store=str(tmp_path / "s"),
            out=str(tmp_path / "o"),
            train={"adapter": "lora:r=x"},
        )
    with pytest.raises(ParameterTypeError, match="sources"):
        build_and_train(sources=[], store=str(tmp_path / "s"), out=str(tmp_path / "o"))
    with pytest.raises(ParameterTypeError, match="tta"):
        build_and_train(
            sources=[{"path": str(phantoms)}],
            store=str(tmp_path / "s"),
            out=str(tmp_path / "o"),
            evaluate={"tta": "mirror"},
        )
    with pytest.raises(ParameterTypeError, match="dataset_id"):
        build_and_train(
            sources=[{"path": str(phantoms)}],
            store=str(tmp_path / "s"),
            out=str(tmp_path / "o"),
            exports=[{"format": "nnunet", "dataset_id": 1000}],
        )
    with pytest.raises(ValueError, match="ome-zarr only"):
        ExportParams(format="nnunet", cases=["a"])
    assert EvalParams(tta="lr").config().tta == "lr"
    with pytest.raises(ValueError, match="valid generator kinds"):
        SynthParams(kind="warp", labels=("liver",))
    with pytest.raises(ValueError, match="unknown key"):
        SynthParams(kind="deform:wobble=1", labels=("liver",))
    trained = SynthParams(kind="cgan", labels=("liver",), steps=8, size=64)
    assert trained.trains and trained.train_config().size == 64 and trained.gid == "cgan"
    assert not (tmp_path / "store").exists() and not (tmp_path / "o").exists()  # nothing ran


CRASH = textwrap.dedent(
    """
    import os, signal, sys
    import pipelines.ingest as pipeline
    import flows.ingest as flow_module
    from flows.params import IngestParams
    real = pipeline.prepare_into
    calls = []
    def dying(cases, dataset, config, fork):
        calls.append(1)
        if len(calls) == 3:  # the third task: two cases are checkpointed on the staging branch by now
            os.kill(os.getpid(), signal.SIGKILL)
        return real(cases, dataset, config, fork)
    flow_module.prepare_into = dying
    flow_module.ingest_flow(sys.argv[1], sys.argv[2], IngestParams(modality="CT", window="abdomen",
                            min_voxels=20, min_pixels=10))
    """
)


def test_rerun_after_crash_resumes_without_duplicates(phantoms: Path, tmp_path: Path, prefect_server: str) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "SAMDATA_DASK_WORKERS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(phantoms), str(store)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert SliceStore.open(store).case_ids() == []  # main is still at its last snapshot
    report = ingest_flow(str(phantoms), str(store), INGEST)
    assert sorted(report["added"]) == [f"phantom_{i:03d}" for i in range(4)] and not report["failed"]
    view = SliceStore.open(store)
    assert view.case_ids() == sorted(report["added"]) and view.verify() == []
    written = [
        int(s.message.split(": ")[1].split()[0])
        for s in view.snapshots()
        if s.message.startswith(report["run_name"] + ": ")
    ]
    assert len(written) == 2 and sum(written) == 4  # a checkpoint before the crash, one after: no case twice


def test_watch_folder_ingests_only_new_cases(tmp_path: Path) -> None:
    from samdata.io.sample_data import write_phantoms

    everything = write_phantoms(tmp_path / "all", cases=3, seed=1, shape=(32, 32, 8))
    watched = tmp_path / "watched"
    shutil.copytree(everything, watched)
    for sub in ("imagesTr", "labelsTr"):
        (watched / sub / "phantom_002.nii.gz").unlink()
    store = str(tmp_path / "store")
    args = dict(
        ingest=INGEST, prompts=PromptParams(name="boxes"), mixture=MixtureParams(name="mix", splits=(0.5, 0.5, 0.0))
    )
    first = watch_flow(str(watched), store, **args)
    assert len(first["new_cases"]) == 2 and first["mixture"]["name"] == "mix"
    quiet = watch_flow(str(watched), store, **args)
    assert quiet["new_cases"] == [] and quiet["prompts"] is None and quiet["mixture"] is None
    for sub in ("imagesTr", "labelsTr"):
        shutil.copy(everything / sub / "phantom_002.nii.gz", watched / sub / "phantom_002.nii.gz")
    third = watch_flow(
        str(watched),
        store,
        **args,
        retrain_into=str(tmp_path / "runs"),
        train=TINY_TRAIN,
        evaluate=EvalParams(split="val"),
    )
    assert third["new_cases"] == ["phantom_002"] and third["prompts"]["n_objects"] > first["prompts"]["n_objects"]
    assert third["mixture"]["counts"]["train"]["real"] == 2 and third["mixture"]["counts"]["val"]["real"] == 1
    assert third["train"]["step"] == 4 and len(list((tmp_path / "runs").iterdir())) == 1
    evaluated = json.loads(Path(third["train"]["evaluation"]["json"]).read_text())
    read = SliceStore.open(store, snapshot=evaluated["data"]["snapshot_id"])
    assert len(load_mixture(read, "mix").cases) == 3  # evaluated on the re-curated mixture, not the first one


def test_train_flow_trains_the_proposer_beside_the_run(phantoms: Path, tmp_path: Path) -> None:
    from pipelines.ingest import ingest
    from pipelines.mixtures import MixtureConfig, make_mixture
    from samdata.normalise import IngestConfig
    from training.proposer import PROPOSER_DIR

    store = tmp_path / "store"
    ingest(phantoms, store, IngestConfig(min_object_voxels=20, min_object_pixels=10))
    make_mixture(store, "mix", MixtureConfig(seed=0, splits=(0.5, 0.5, 0.0), labels=("liver",)))
    params = TINY_TRAIN.model_copy(update={"steps": 2, "proposer": "unet:steps=2,lr=0.01,augment=none"})
    out = tmp_path / "run"
    result = train_flow(str(store), "mix", str(out), train=params, evaluate=None)
    assert result["step"] == 2 and result["proposer"]["run_dir"] == PROPOSER_DIR
    assert result["proposer"]["step"] == 2 and result["proposer"]["labels"] == ["liver"]
    assert json.loads((out / PROPOSER_DIR / "config.json").read_text())["model"] == "unet"
    assert "Proposer for prompt mode auto" in latest_artifact(artifact_key("train", out))
    with pytest.raises(ParameterTypeError):
        train_flow.validate_parameters(
            {"store": str(store), "mixture": "mix", "out": str(out), "train": {"proposer": "vnet"}}
        )
