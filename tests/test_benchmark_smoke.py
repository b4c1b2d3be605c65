"""The benchmark harness on tiny data without nnU-Net: it says so and still runs nnocc's half."""
import json

from benchmarks import run


def test_harness_runs_nnocc_half_without_nnunet(tmp_path, monkeypatch):
    monkeypatch.delenv("NNUNET_VENV", raising=False)
    path = run.main(["--budget-minutes", "0.05", "--num-train", "5", "--num-test", "1", "--shape", "16", "40", "40",
                     "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results"), "--no-readme",
                     "--scaling-cases", "1"])
    results = json.loads(path.read_text())
    assert "nnU-Net v2 not found" in results["nnunet_missing"]
    assert "nnunet" not in results
    n = results["nnocc"]
    assert n["train"]["iterations"] > 0 and n["predict"]["seconds_per_case"] > 0
    assert set(n["output_resolution"]) == {"1.0", "0.5", "0.25"}
    assert n["mise_vs_dense"]["voxel_agreement"] > 0.99
    assert len(n["training_memory_vs_patch"]) == 5
    assert {g["goal"] for g in results["goals"]} >= {"MISE: at most 15 % of dense queries"}
