"""Where a store lives: a local folder (default) or S3-compatible object storage (``s3://bucket/prefix``).

Icechunk logs to stdout, and on every open of a local folder it warns that the local filesystem is
not safe for concurrent commits. That line would pollute every CLI output and data loader, so unless
the user set ``ICECHUNK_LOG`` this module lowers just that logger to errors. The warning's point
stands and is documented instead: a local store wants one committing process at a time (all
parallel writes go through one ``StoreWriter``); concurrent runs belong on object storage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import icechunk

from samdata.errors import StoreError, StoreNotFoundError

if "ICECHUNK_LOG" not in os.environ:
    icechunk.set_logs_filter("warn,icechunk::storage::object_store=error")


@dataclass(frozen=True)
class S3Options:
    """Connection settings for S3-compatible storage (AWS, MinIO, Ceph, moto).

    ``allow_http`` / ``force_path_style`` left as None follow the endpoint: an ``http://`` endpoint
    allows http, and any custom endpoint uses path-style addressing. Without keys, credentials come
    from the AWS default chain (env, profile, instance role); ``anonymous`` sends unsigned requests.
    """

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    allow_http: bool | None = None
    force_path_style: bool | None = None
    anonymous: bool = False

    @classmethod
    def from_env(cls) -> S3Options:
        """Read AWS_ENDPOINT_URL, AWS_REGION (or AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
        AWS_SESSION_TOKEN."""
        env = os.environ
        return cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL_S3") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
        )

    def storage(self, bucket: str, prefix: str | None) -> icechunk.Storage:
        """Build the Icechunk storage for ``bucket``/``prefix`` with these settings."""
        endpoint = self.endpoint_url
        allow_http = (
            self.allow_http if self.allow_http is not None else bool(endpoint and endpoint.startswith("http://"))
        )
        path_style = self.force_path_style if self.force_path_style is not None else bool(endpoint)
        keys: dict[str, object] = {}
        if self.anonymous:
            keys["anonymous"] = True
        elif self.access_key_id and self.secret_access_key:
            keys.update(
                access_key_id=self.access_key_id,
                secret_access_key=self.secret_access_key,
                session_token=self.session_token,
            )
        else:
            keys["from_env"] = True
        return icechunk.s3_storage(
            bucket=bucket,
            prefix=prefix,
            region=self.region,
            endpoint_url=endpoint,
            allow_http=allow_http,
            force_path_style=path_style,
            **keys,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Location:
    """A parsed store address: the canonical ``url`` and the Icechunk storage behind it."""

    url: str
    storage: icechunk.Storage
    local_path: Path | None


def locate(url: str | Path, s3: S3Options | None) -> Location:
    """Parse a local path or ``s3://bucket/prefix`` into a :class:`Location`."""
    text = str(url)
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        if not bucket:
            raise StoreError(f"store url {text!r} names no bucket; expected s3://bucket/prefix")
        canonical = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        options = s3 if s3 is not None else S3Options.from_env()
        return Location(canonical, options.storage(bucket, prefix or None), None)
    if "://" in text:
        raise StoreError(f"unsupported store url {text!r}; expected a local folder or s3://bucket/prefix")
    path = Path(text).expanduser().absolute()
    return Location(str(path), icechunk.local_filesystem_storage(str(path)), path)


def open_repository(loc: Location, *, create: bool) -> tuple[icechunk.Repository, bool]:
    """Open the Icechunk repository at ``loc`` (creating it if allowed); returns (repo, created)."""
    path = loc.local_path
    if path is not None:
        if path.exists() and not path.is_dir():
            raise StoreError(f"store {loc.url!r} is a file, expected a store folder")
        if not path.exists() and not create:
            raise StoreNotFoundError(
                f"no store at {loc.url!r}: the folder does not exist (pass create=True to make one)"
            )
    try:
        exists = icechunk.Repository.exists(loc.storage)
    except icechunk.IcechunkError as err:
        raise StoreError(f"cannot reach store {loc.url!r}: {icechunk_message(err)}") from err
    if exists:
        try:
            return icechunk.Repository.open(loc.storage), False
        except icechunk.IcechunkError as err:
            raise StoreError(f"cannot open store {loc.url!r}: {icechunk_message(err)}") from err
    if path is not None and path.exists() and any(path.iterdir()):
        raise StoreError(f"{loc.url!r} exists but is not a samdata store (no Icechunk repository in it)")
    if not create:
        raise StoreNotFoundError(f"no store at {loc.url!r} (pass create=True to make one)")
    try:
        return icechunk.Repository.create(loc.storage), True
    except icechunk.IcechunkError as err:
        raise StoreError(f"cannot create store at {loc.url!r}: {icechunk_message(err)}") from err


def icechunk_message(err: BaseException) -> str:
    """The meaningful line of an Icechunk error (its text carries a long span trace)."""
    lines = [ln.strip(" |x`->") for ln in str(err).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("context:", "at ", "with "))]
    return lines[0] if lines else type(err).__name__
