"""The store on S3-compatible object storage: a moto server on 127.0.0.1 started by the module.

The store contract (tests/storage/contract.py) runs here as on a local folder, plus the two ways of giving
the S3 settings: explicit ``S3Options`` and the AWS environment variables.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from samdata.errors import StoreError
from storage import S3Options, SliceStore
from tests.storage.contract import StoreContract

KEYS = {"access_key_id": "testing", "secret_access_key": "testing-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free local port with a bucket ``samdata``; each test uses its own prefix."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEYS["access_key_id"],
        aws_secret_access_key=KEYS["secret_access_key"],
    ).create_bucket(Bucket="samdata")
    try:
        yield endpoint
    finally:
        server.stop()


def use_s3_environment(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point the AWS environment variables (read by ``S3Options.from_env``) at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["secret_access_key"])
    monkeypatch.setenv("AWS_REGION", "us-east-1")


class TestS3Store(StoreContract):
    """The store contract on S3: every ``SliceStore.open(url)`` finds the moto server through the environment."""

    @pytest.fixture
    def store_path(self, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
        """``s3://samdata/contract/<random>``: a freshly created, empty store of its own."""
        use_s3_environment(monkeypatch, s3_endpoint)
        url = f"s3://samdata/contract/{uuid.uuid4().hex}"
        SliceStore.open(url, create=True)
        return url


def test_s3_round_trip_with_explicit_options(s3_endpoint, make_case):
    options = S3Options(endpoint_url=s3_endpoint, region="us-east-1", **KEYS)
    assert "testing-secret" not in repr(options)
    url = "s3://samdata/stores/demo/"
    with pytest.raises(StoreError, match="no store at 's3://samdata/stores/demo'"):
        SliceStore.open(url, s3=options)
    store = SliceStore.open(url, create=True, s3=options)
    assert store.url == "s3://samdata/stores/demo"
    case = make_case("a", 1)
    with store.writer("ingest", run_name="s3run") as w:
        w.write_case(case)
        w.checkpoint("cp")
        w.write_case(make_case("b", 2))
    reopened = SliceStore.open(url, s3=options)
    assert reopened.case_ids() == ["a", "b"]
    image, label = reopened.read_slice("a", 2)
    np.testing.assert_array_equal(image, case.image[2])
    np.testing.assert_array_equal(label, case.label[2])
    assert len(reopened.objects()) == 8
    assert reopened.verify() == []
    first = SliceStore.open(url, s3=options, snapshot=reopened.snapshots()[1].id)
    assert first.case_ids() == ["a"]


def test_s3_options_from_environment(s3_endpoint, make_case, monkeypatch):
    use_s3_environment(monkeypatch, s3_endpoint)
    assert S3Options.from_env() == S3Options(endpoint_url=s3_endpoint, region="us-east-1", **KEYS)
    with SliceStore.open("s3://samdata/envstore", create=True).writer("one") as w:
        w.write_case(make_case("a", 3))
    assert SliceStore.open("s3://samdata/envstore").case_ids() == ["a"]
