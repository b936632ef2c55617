"""cluster.yaml is checked by Ray's own cluster-config machinery (defaults merged, then the JSON schema)."""
from __future__ import annotations

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).parents[1] / "cluster.yaml"


def load() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_rays_schema():
    """validate_config raises on a config outside Ray's schema; the merge with Ray's defaults keeps ours."""
    ours = load()
    merged = prepare_config(ours)
    validate_config(merged)
    assert merged["cluster_name"] == ours["cluster_name"]
    assert merged["max_workers"] == ours["max_workers"]


def test_image_matches_the_pinned_ray_version():
    import ray

    assert load()["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py311-gpu"


def test_dashboard_and_mlflow_are_not_bound_to_public_addresses():
    commands = " ".join(load()["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in commands
    assert "mlflow server --host 127.0.0.1" in commands and "0.0.0.0" not in commands


def test_entry_script_fills_in_the_clusters_tracking_and_storage_only_where_not_given():
    from orchestrator.cluster_entry import HEAD_MLFLOW, with_cluster_defaults

    env = {"DECOUPLE_STORAGE": "s3://bucket/sweeps"}
    assert with_cluster_defaults(["sweep", "split"], env) == [
        "sweep", "split", "--tracking-uri", HEAD_MLFLOW, "--storage", "s3://bucket/sweeps"]
    assert with_cluster_defaults(["sweep", "split", "--storage=/mnt/efs", "--tracking-uri", "http://h:1"], env) == [
        "sweep", "split", "--storage=/mnt/efs", "--tracking-uri", "http://h:1"]
    assert with_cluster_defaults(["train", "--no-tracking"], env) == [
        "train", "--no-tracking", "--output-dir", "s3://bucket/sweeps"]
    assert with_cluster_defaults(["cache", "build", "--out", "x"], env) == ["cache", "build", "--out", "x"]
