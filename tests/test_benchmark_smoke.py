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


def test_per_patch_cost_counts_the_encoding_and_a_query_per_voxel():
    from benchmarks.patch_cost import planned_patch_cost
    from nnocc.architectures.registry import architecture_class

    kwargs = architecture_class("swipe").build_kwargs("tiny", 1, 3, [1.0, 1.0, 1.0])
    cost = planned_patch_cost("swipe", kwargs, [32, 32, 32])
    assert cost["queries_per_patch"] == 32 ** 3 and cost["parameters"] > 1e5
    dense = cost["gflops_encode"] + cost["mflops_per_query"] * 32 ** 3 / 1e3
    assert abs(cost["gflops_per_patch"] - dense) < 1e-6 * dense
    assert 0 < cost["gflops_encode"] < cost["gflops_per_patch"]
