"""Storage locations: local paths and bucket URIs (a real S3 API on localhost, moto's server) behave alike."""
from __future__ import annotations

import json

import pytest

from trainables import storage


def test_uri_paths_keep_their_query_options():
    uri = "s3://bucket/sweeps?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.is_uri(uri) and not storage.is_uri("/data/sweeps")
    joined = storage.join(uri, "teachers", "abc")
    assert joined == "s3://bucket/sweeps/teachers/abc?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.parent(joined) == storage.join(uri, "teachers") and storage.name(joined) == "abc"
    assert storage.location_of("bucket/sweeps/x", uri) == storage.join(uri, "x")
    assert storage.join("/data", "a", "b") == "/data/a/b" and storage.parent("/data/a") == "/data"
    assert storage.location_of("/data/x", "/data") == "/data/x" and storage.resolve(uri) == uri


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path, s3_bucket) -> str:
    if request.param == "local":
        return str(tmp_path / "root")
    bucket, query = s3_bucket
    return f"{bucket}/{tmp_path.name}?{query}"


def test_records_round_trip_and_are_found(root):
    assert not storage.exists(storage.join(root, "run"))
    storage.write_text(storage.join(root, "run", "a", "state.json"), json.dumps({"epoch": 1}))
    storage.write_text(storage.join(root, "run", "b", "state.json"), "{}")
    storage.write_text(storage.join(root, "run", "b", "other.json"), "{}")
    assert storage.exists(storage.join(root, "run"))
    assert json.loads(storage.read_text(storage.join(root, "run", "a", "state.json"))) == {"epoch": 1}
    found = sorted(storage.find_files(storage.join(root, "run"), "state.json"))
    assert found == [storage.join(root, "run", "a", "state.json"), storage.join(root, "run", "b", "state.json")]
    assert storage.find_files(storage.join(root, "missing"), "state.json") == []


def test_local_copy_downloads_a_bucket_directory_once(root, tmp_path, monkeypatch):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    folder = storage.join(root, "ckpt")
    storage.write_text(storage.join(folder, "config.json"), '{"hidden_size": 32}')
    storage.write_text(storage.join(folder, "sub", "weights.bin"), "w")
    copy = storage.local_copy(folder)
    assert (copy / "config.json").read_text() == '{"hidden_size": 32}' and (copy / "sub" / "weights.bin").is_file()
    if storage.is_uri(root):
        assert copy.parent == tmp_path / "cache" and (copy / storage.COMPLETE).is_file()
        storage.write_text(storage.join(folder, "config.json"), "changed")
        assert storage.local_copy(folder) == copy and (copy / "config.json").read_text() != "changed"  # cached
        with pytest.raises(FileNotFoundError, match="no such directory"):
            storage.local_copy(storage.join(root, "absent"))
    else:
        assert str(copy) == storage.resolve(folder)


def test_a_bucket_has_no_default_mlflow_store(tmp_path):
    from orchestrator.tracking import default_tracking_uri

    with pytest.raises(ValueError, match=r"^--tracking-uri: s3://bucket/x is a bucket"):
        default_tracking_uri("s3://bucket/x")
    assert default_tracking_uri(str(tmp_path)) == f"sqlite:///{tmp_path}/mlflow.db"
