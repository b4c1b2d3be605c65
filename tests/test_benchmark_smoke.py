"""The benchmark harness on tiny data without nnU-Net: it says so and still runs nnocc's half."""
import json

import pytest

from benchmarks import run


def test_harness_runs_nnocc_half_without_nnunet(tmp_path, monkeypatch):
    monkeypatch.delenv("NNUNET_VENV", raising=False)
    path = run.main(["--budget-minutes", "0.05", "--num-train", "5", "--num-test", "1", "--shape", "16", "40", "40",
                     "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results"), "--no-readme",
                     "--scaling-cases", "1", "--output-factors", "1", "0.5", "--patch-scales", "0.5", "1"])
    results = json.loads(path.read_text())
    assert "nnU-Net v2 not found" in results["nnunet_missing"]
    assert "nnunet" not in results
    n = results["nnocc"]
    assert n["train"]["iterations"] > 0 and n["predict"]["seconds_per_case"] > 0
    assert set(n["output_resolution"]) == {"1.0", "0.5"}
    assert n["mise_vs_dense"]["voxel_agreement"] > 0.99
    half, planned = n["training_memory_vs_patch"]
    assert half["voxels"] < planned["voxels"] and planned["measured_mb"] > 0
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


def _point(minutes, dice, sd, rss=1000.0):
    return {"minutes": minutes, "predict": {"peak_rss_mb": rss},
            "evaluation": {"kits23": {"challenge": {"mean_dice": dice, "mean_surface_dice": sd}}}}


def test_learning_curves_report_finds_crossings_and_judges_goals():
    from benchmarks.report_curves import crossings, curves_goals, trained_on

    ours = [_point(5, 0.5, 0.4), _point(15, 0.6, 0.5), _point(30, 0.62, 0.55, rss=600)]
    theirs = [_point(5, 0.1, 0.1), _point(15, 0.65, 0.6), _point(30, 0.7, 0.6, rss=1500)]
    assert crossings(ours, theirs) == [(5, 15)]
    assert crossings(ours, ours) == []
    data = {"runs": {"2GB": {"budget_minutes": 30, "marks": [5, 15, 30],
                             "tools": {"3d_occ": {"curve": ours}, "nnunet": {"curve": theirs}}}}}
    coverage, *rows = curves_goals(data)
    assert not coverage["met"] and coverage["value"] == "3d_occ, nnunet for 30 min at 2GB"
    goals = {g["goal"].split(": ", 1)[1]: g for g in rows}
    assert goals["KiTS23 mean Dice at least nnU-Net's - 0.02"]["value"] == "-0.080"
    assert not goals["KiTS23 mean Dice at least nnU-Net's - 0.02"]["met"]
    assert goals["inference peak memory at most half of nnU-Net's"]["met"]     # 600 / 1500
    assert trained_on({"date": "2026-12-05", "machine": {"cpu": "AMD EPYC", "cpu_mhz": 2596.1}}) == \
        "2026-12-05, AMD EPYC at 2596 MHz"
    assert trained_on({"date": "2026-12-04", "machine": {"processor": "x86_64"}}) == "2026-12-04"   # before it was recorded


def test_learning_curves_report_reads_a_partly_scored_curve_by_its_minutes():
    from benchmarks.report_curves import _crossing_text, _curve_table, coverage_goal, crossings

    full = [_point(5, 0.1, 0.1), _point(30, 0.3, 0.2), _point(60, 0.4, 0.3)]
    late = [_point(60, 0.5, 0.4)]
    assert crossings(late, full) == []
    assert crossings([_point(5, 0.2, 0.1), _point(60, 0.3, 0.2)], full) == [(5, 60)]
    run = {"budget_minutes": 60, "marks": [5, 30, 60], "tools": {"3d_ossnet": {"curve": late}, "nnunet": {"curve": full}}}
    assert _curve_table(run)[2:] == ["| 5 | – / – | 0.100 / 0.100 |", "| 30 | – / – | 0.300 / 0.200 |",
                                     "| 60 | 0.500 / 0.400 | 0.400 / 0.300 |"]
    coverage = coverage_goal({"runs": {"2GB": run, "8GB": run}})
    assert not coverage["met"] and "3d_ossnet at 8GB scored at 60 min only" in coverage["value"]
    # cut off before nnU-Net's last, better mark: the side is read at the last mark both scored
    early = {"budget_minutes": 60, "marks": [5, 30, 60],
             "tools": {"3d_occ": {"curve": [_point(5, 0.2, 0.1), _point(30, 0.35, 0.2)]}, "nnunet": {"curve": full}}}
    assert _crossing_text(early) == ["- 3d_occ and nnU-Net: the curves do not cross within the budget "
                                     "(3d_occ above at every mark both scored)."]


def test_gpu_study_records_failures_and_skips_what_the_deadline_cannot_hold(tmp_path):
    from benchmarks.gpu_study import Study

    study = Study(tmp_path, deadline_minutes=1.0)
    study.step("fits", 1, lambda: {"x": 1})
    study.step("fails", 1, lambda: {"x": 1 / 0})
    study.step("too_long", 3600, lambda: {"x": 2})
    steps = json.loads((tmp_path / "gpu_study.json").read_text())["steps"]
    assert steps["fits"]["x"] == 1 and "ZeroDivisionError" in steps["fails"]["error"]
    assert "needed" in steps["too_long"]["skipped"] and "x" not in steps["too_long"]


def test_learning_curves_score_every_snapshot_and_keep_earlier_tools(tmp_path, monkeypatch):
    import SimpleITK as sitk

    from benchmarks import learning_curves
    from tests.dataset_conversion.test_real_anatomy import kits_like_labels

    monkeypatch.delenv("NNUNET_VENV", raising=False)
    for i in range(6):
        case = tmp_path / "kits23" / "dataset" / f"case_{i:05d}"
        case.mkdir(parents=True)
        sitk.WriteImage(kits_like_labels(i), str(case / "segmentation.nii.gz"))
    args = ["--kits23", str(tmp_path / "kits23"), "--budget-minutes", "0.1", "--marks", "0.02", "0.1", "5",
            "--memory-target", "1", "--tools", "3d_occ", "nnunet", "--train", "5", "--test", "1", "--spacing", "4", "4", "4",
            "--work", str(tmp_path / "work"), "--out", str(tmp_path / "curves.json")]
    really_score = learning_curves.score_checkpoint
    # one mark scored for real shows what a point holds; a second would only double the time
    monkeypatch.setattr(learning_curves, "score_checkpoint", lambda tool, ws, minutes: really_score(tool, ws, minutes)
                        if minutes == 0.1 else {"minutes": minutes})
    run = json.loads(learning_curves.main(args).read_text())["runs"]["1GB"]
    assert run["marks"] == [0.02, 0.1] and list(run["tools"]) == ["3d_occ"]     # no nnU-Net here: skipped
    curve = run["tools"]["3d_occ"]["curve"]
    assert [p["minutes"] for p in curve] == [0.02, 0.1]
    fold = next((tmp_path / "work").glob("1GB/nnocc/results/*/*3d_occ/fold_0"))
    assert (fold / "checkpoint_at_0.02min.pth").is_file() and (fold / "checkpoint_at_0.1min.pth").is_file()
    point = curve[1]
    assert 0 <= point["evaluation"]["kits23"]["challenge"]["mean_dice"] <= 1
    assert set(point["evaluation"]["classes"]) == {"kidney", "tumor", "cyst", "mean"}
    assert point["inference_stats"]["query_fraction"] > 0     # above 1 when the second pass re-asks points
    rerun = json.loads(learning_curves.main(args).read_text())["runs"]["1GB"]
    assert rerun["tools"]["3d_occ"]["curve"] == curve and len(rerun["commands"]) == 2
    spacing_at = args.index("--spacing")
    with pytest.raises(SystemExit, match="made at 4 x 4 x 4 mm, not --spacing 3 2 2"):
        learning_curves.main(args[:spacing_at + 1] + ["3", "2", "2"] + args[spacing_at + 4:])

    # a rescore of one mark keeps the curve's other points and marks
    scored = []
    monkeypatch.setattr(learning_curves, "score_checkpoint", lambda tool, ws, minutes: scored.append(minutes) or
                        {"minutes": minutes, "rescored": True})
    monkeypatch.setattr(learning_curves, "inference_cost", lambda tool, ws, label: {"label": label})
    marks_at = args.index("--marks")
    one_mark = args[:marks_at + 1] + ["0.1"] + args[marks_at + 4:] + ["--rescore"]
    rescored = json.loads(learning_curves.main(one_mark).read_text())["runs"]["1GB"]
    assert scored == [0.1] and rescored["marks"] == [0.02, 0.1] and rescored["tools"]["3d_occ"]["curve"][0] == curve[0]
    assert rescored["tools"]["3d_occ"]["curve"][1]["minutes"] == 0.1 and "rescored" not in curve[1]
    assert rescored["tools"]["3d_occ"]["curve"][1]["rescored"] == rescored["tools"]["3d_occ"]["rescored"]

    # a run cut off after training: --resume scores the trained model without training it again
    results = json.loads((tmp_path / "curves.json").read_text())
    trained = results["runs"]["1GB"]["tools"].pop("3d_occ")
    (tmp_path / "curves.json").write_text(json.dumps(results))
    final = fold / "checkpoint_final.pth"
    written = final.stat().st_mtime
    # scoring was checked above; here only what resuming decides (it doubled this test's time)
    scored.clear()
    resumed = json.loads(learning_curves.main(args + ["--resume"]).read_text())["runs"]["1GB"]["tools"]["3d_occ"]
    assert final.stat().st_mtime == written and resumed["train"]["iterations"] == trained["train"]["iterations"]
    assert resumed["train"]["peak_rss_mb"] == trained["train"]["peak_memory_mb_in_process"]
    assert "peak_rss_source" in resumed["train"]
    assert scored == [0.02, 0.1] and resumed["curve"] == [{"minutes": m, "rescored": True} for m in scored]
    assert resumed["inference_cost"] == {"label": "3d_occ"} and resumed["machine"] == trained["machine"]

    # a resume that scores the last mark only keeps the target's marks, and --rescore adds the other later
    results["runs"]["1GB"]["tools"].pop("3d_occ", None)
    (tmp_path / "curves.json").write_text(json.dumps(results))
    scored.clear()
    run = json.loads(learning_curves.main(args[:marks_at + 1] + ["0.1"] + args[marks_at + 4:] + ["--resume"]).read_text())
    run = run["runs"]["1GB"]
    assert scored == [0.1] and run["marks"] == [0.02, 0.1] and len(run["tools"]["3d_occ"]["curve"]) == 1
    monkeypatch.setattr(learning_curves, "inference_cost", lambda *a: pytest.fail("adding a mark measured the cost"))
    added = json.loads(learning_curves.main(args[:marks_at + 1] + ["0.02"] + args[marks_at + 4:] + ["--rescore"])
                       .read_text())["runs"]["1GB"]["tools"]["3d_occ"]
    assert scored == [0.1, 0.02] and added["curve"][0] == {"minutes": 0.02, "rescored": True}     # not dated: new
    assert [p["minutes"] for p in added["curve"]] == [0.02, 0.1] and "rescored" not in added


def test_learning_curves_replan_a_lost_workspace_and_restart_a_target_whose_budget_changes(tmp_path):
    from benchmarks import learning_curves
    from benchmarks.measure import Measurement

    class Tool:
        def __init__(self, name, planned):
            self.name, self.was_planned, self.plans = name, planned, 0

        def planned(self):
            return self.was_planned

        def plan_and_preprocess(self):
            self.plans += 1
            return Measurement("plan", 0, 1.0, 10.0)

        def model_folder(self):
            return tmp_path / self.name / "model"

    kept, lost, fresh = Tool("nnocc", True), Tool("nnunet", False), Tool("nnocc", True)
    run = {"tools": {}, "nnocc_plan": {"seconds": 2.0}, "nnunet_plan": {"seconds": 3.0}}
    learning_curves.plan_where_needed(run, [kept, lost])
    assert (kept.plans, lost.plans) == (0, 1) and run["nnocc_plan"] == {"seconds": 2.0}
    learning_curves.plan_where_needed({"tools": {}}, [fresh, Tool("nnocc", True)])
    assert fresh.plans == 1                                    # once per tool family
    nnunet_plan = run["nnunet_plan"]
    (fresh.model_folder() / "fold_0").mkdir(parents=True)
    learning_curves.forget_earlier_runs(run, [fresh])           # --redo
    assert "nnocc_plan" not in run and run["nnunet_plan"] == nnunet_plan
    assert not fresh.model_folder().exists() and (tmp_path / "nnocc").is_dir()
    results = {"runs": {"2GB": {"tools": {"3d_occ": {}}, "budget_minutes": 30.0}}}
    assert learning_curves.target_run(results, 2, 30.0)["tools"] == {"3d_occ": {}}
    assert learning_curves.target_run(results, 2, 60.0) == {"tools": {}} == results["runs"]["2GB"]
    assert learning_curves.target_run(results, 8, 60.0) is results["runs"]["8GB"]


def test_find_best_keeps_a_wider_earlier_choice_when_the_workspace_lost_models(monkeypatch):
    from benchmarks import learning_curves, report_curves

    asked = []
    monkeypatch.setattr(learning_curves, "find_best", lambda ws, among: asked.append(among) or {"best": among[-1]})
    run = {}
    learning_curves.update_find_best(run, None, ["3d_occ", "3d_ossnet"])
    assert run["find_best"] == {"best": "3d_ossnet", "among": ["3d_occ", "3d_ossnet"]}
    learning_curves.update_find_best(run, None, ["3d_occ", "3d_ossnet"])        # nothing new: not asked again
    learning_curves.update_find_best(run, None, ["3d_ossnet", "3d_occ"])        # nor in another order
    learning_curves.update_find_best(run, None, ["3d_swipe", "3d_sconet"])      # a new machine lost the others
    assert run["find_best"]["best"] == "3d_ossnet" and run["find_best"]["not_rechosen_with"] == ["3d_sconet", "3d_swipe"]
    learning_curves.update_find_best(run, None, ["3d_ossnet"], ["3d_ossnet"])  # lost again, one retrained: both noted
    assert run["find_best"]["not_rechosen_with"] == ["3d_sconet", "3d_swipe"]
    assert run["find_best"]["retrained_since"] == ["3d_ossnet"]
    run["find_best"] |= {"validation": {"3d_ossnet": {"dice": 0.5}}, "postprocessing": []}
    text = report_curves._find_best_text(run)[0]
    assert "Not weighed" in text and "3d_sconet, 3d_swipe." in text and "Trained again since" in text
    learning_curves.update_find_best(run, None, ["3d_occ", "3d_ossnet", "3d_sconet"])     # a wider choice: asked
    assert asked == [["3d_occ", "3d_ossnet"], ["3d_occ", "3d_ossnet", "3d_sconet"]]
    assert run["find_best"] == {"best": "3d_sconet", "among": ["3d_occ", "3d_ossnet", "3d_sconet"]}
    learning_curves.update_find_best(run, None, ["3d_occ", "3d_ossnet", "3d_sconet"], ["3d_occ"])   # retrained: asked
    assert len(asked) == 3 and "retrained_since" not in run["find_best"]


def test_mise_sweep_counts_lost_components_and_reports_them(tmp_path):
    """Voxel agreement hides a lost speck; the sweep table must not."""
    import numpy as np

    from benchmarks.inference_memory import memory_section
    from benchmarks.kits_inference import structures_kept, sweep_arguments
    from benchmarks.report_kits import sweep_section
    from nnocc.io.images import ImageGeometry, write_segmentation

    geometry = ImageGeometry([20, 30, 30], [5.0, 0.8, 0.8], [0.0, 0.0, 0.0], [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])
    dense = np.zeros(geometry.shape, dtype=np.uint8)
    dense[5:15, 5:20, 5:20] = 1
    dense[2, 25, 25] = 2                   # a one-voxel speck MISE misses
    dense[16:18, 25:28, 25:28] = 2         # 18 voxels MISE keeps, one voxel short
    mise = dense.copy()
    mise[2, 25, 25] = 0
    mise[16, 25, 25] = 0
    for folder, labels in (("dense", dense), ("mise", mise)):
        write_segmentation(labels, geometry, tmp_path / folder / "case.nii.gz")
    kept = structures_kept(tmp_path / "mise", tmp_path / "dense")
    assert kept["dense_components"] == 3 and kept["components_missed"] == 1 and kept["largest_missed_voxels"] == 1
    assert kept["agreement"] == 1 - 2 / dense.size
    assert kept["dice_against_dense"]["1"] == 1.0 and 0.9 < kept["dice_against_dense"]["2"] < 1.0
    figures = {"command": {"seconds": 12.0}, "cases": {"case": {"query_fraction": 0.04}}}
    data = {"cases": {"case_1": {"nnocc_mise_plain": figures | kept, "mise_plain_dense_agreement": 0.99999,
                                 "sweep": {"6.4:0.1": figures | kept | {"agreement": 0.9999},
                                           "plan:plan:changing:4": figures | kept}}}}
    table = "\n".join(sweep_section(data))
    assert "| case_1 | plan | plan | all | 1 | 0.0400 |" in table and "| case_1 | 6.4 | 0.1 | all | 1 |" in table
    assert "| case_1 | plan | plan | changing | 4 |" in table
    recorded = "\n".join(sweep_section(data | {"defaults": {"mise_children": "changing"}}))   # runs that say their default
    assert "| case_1 | plan | plan | changing | 1 | 0.0400 |" in recorded and "| case_1 | 6.4 | 0.1 | changing | 1 |" in recorded
    assert sweep_arguments("plan:0.1:changing:4") == ["--uncertainty_margin", "0.1", "--mise_children", "changing",
                                                      "--aux_hint_factor", "4"]
    assert sweep_arguments("6.4:plan") == ["--coarse_spacing_mm", "6.4"]
    with pytest.raises(SystemExit, match="MM:MARGIN"):
        sweep_arguments("6.4")
    assert "1 of 3 (1)" in table
    stages = [{"stage": "preprocess", "seconds": 1.0, "rss_after_mb": 800.0, "peak_mb": 1200.0}]
    memory = {"case": "c", "command": "now", "variants": {}, "stages_no_mirroring": {
        "peak_resettable": True, "output_shape": [1, 2, 3], "stages": stages},
        "before": {"label": "abc123", "command": "then", "stages": [stages[0] | {"peak_mb": 2600.0}]}}
    assert "| preprocess | 1.0 | 800 | 1200 | 2600 |" in "\n".join(memory_section(memory))


def test_kits_sized_section_states_the_conditions_of_its_run(monkeypatch):
    from benchmarks import report_kits

    mise = {"command": {"seconds": 50.0, "peak_rss_mb": 900.0},
            "cases": {"c1": {"query_fraction": 0.18, "output_shape": [97, 512, 512]}}}
    run = {"date": "2026-12-05", "machine": {"processor": "x86_64", "cores": 2}, "commands": ["python -m x"],
           "notes": "whole scans, out of the models' training domain", "cases": {"c1": {"nnocc_mise": mise}}}
    monkeypatch.setattr(report_kits, "load_result", lambda name: run if name == report_kits.KITS_INFERENCE_FILE else None)
    lines = report_kits.kits_inference_section()
    assert "Conditions: whole scans, out of the models' training domain" in lines
    assert lines.index("Conditions: whole scans, out of the models' training domain") < lines.index("| goal | measured | met |")
    run.pop("notes")
    assert not any(line.startswith("Conditions:") for line in report_kits.kits_inference_section())


def test_mise_on_an_oracle_field_of_kits_like_anatomy_matches_dense_with_fewer_queries(tmp_path):
    import SimpleITK as sitk

    from benchmarks import mise_oracle
    from tests.dataset_conversion.test_real_anatomy import kits_like_labels

    folder = tmp_path / "kits23" / "dataset" / "case_00000"
    folder.mkdir(parents=True)
    sitk.WriteImage(kits_like_labels(0), str(folder / "segmentation.nii.gz"))
    out = mise_oracle.main(["--kits23", str(tmp_path / "kits23"), "--cases", "case_00000", "--coarse-mm", "7",
                            "13", "--margins", "0.4", "0", "--children", "all", "changing", "--sigma-mm", "2",
                            "--out", str(tmp_path / "o.json")])
    runs = json.loads(out.read_text())["cases"]["case_00000"]["runs"]
    settings = [(mm, margin, steps) for mm, steps in ((7.0, [1, 2, 2]), (13.0, [2, 4, 4])) for margin in (0.4, 0.0)]
    assert [(r["coarse_mm"], r["margin"], r["steps"]) for r in runs] == settings * 2
    assert [r["children"] for r in runs] == ["all"] * 4 + ["changing"] * 4
    for setting in runs:
        assert setting["dense_components"] == 4 and setting["agreement"] > 0.999
        assert setting["lattice_share"] <= setting["query_share"] < 0.6
    assert runs[2]["query_share"] < runs[0]["query_share"] and runs[1]["query_share"] <= runs[0]["query_share"]
    assert runs[0]["components_missed"] == 0
    for every, changing in zip(runs[:4], runs[4:]):      # the same setting, only the changing children refined
        assert changing["query_share"] <= every["query_share"]
    assert runs[6]["query_share"] < runs[2]["query_share"]    # two levels and more: the rules differ
    table = "\n".join(mise_oracle.oracle_section(json.loads(out.read_text())))
    assert "| case_00000 [40, 96, 96] | 13 | 1 | [2, 4, 4] | 0 | all | 0.0312 |" in table
    assert ("case_00000: the cheapest setting that lost nothing here was 13 mm, hint factor 1, margin 0, "
            "children changing") in table


def test_mise_on_an_oracle_field_guarded_by_a_finer_hint_asks_less_and_loses_nothing(tmp_path):
    import SimpleITK as sitk

    from benchmarks import mise_oracle
    from tests.dataset_conversion.test_real_anatomy import kits_like_labels

    folder = tmp_path / "kits23" / "dataset" / "case_00000"
    folder.mkdir(parents=True)
    sitk.WriteImage(kits_like_labels(0), str(folder / "segmentation.nii.gz"))
    out = mise_oracle.main(["--kits23", str(tmp_path / "kits23"), "--cases", "case_00000", "--coarse-mm", "7",
                            "--margins", "0.4", "--hint-factors", "1", "2", "--sigma-mm", "2", "--out", str(tmp_path / "o.json")])
    plain, guarded = json.loads(out.read_text())["cases"]["case_00000"]["runs"]
    assert (plain["hint_factor"], plain["steps"], plain["hint_share"]) == (1, [1, 2, 2], 0)
    assert (guarded["hint_factor"], guarded["steps"]) == (2, [2, 4, 4])
    assert guarded["hint_share"] == pytest.approx(plain["lattice_share"], rel=0.1)    # read on the plain lattice
    assert guarded["query_share"] < plain["query_share"]
    assert guarded["components_missed"] == 0 and guarded["agreement"] > 0.999
    goals = mise_oracle.oracle_goals(json.loads(out.read_text()))      # one row per factor, the unguarded one first
    assert ["hint factor" in g["goal"] for g in goals] == [False, True]
    assert "hint lookups" in goals[1]["value"] and "hint lookups" not in goals[0]["value"]


def test_shape_table_shows_the_largest_component_beside_the_raw_reconstruction():
    from benchmarks.report_shapes import _largest_table

    figures = {"dice": 0.8, "asd": 3.0, "hd95": 18.0, "dice_largest": 0.85, "asd_largest": 1.5, "hd95_largest": 5.25}
    data = {"configs": {"4x9": {"T100": {name: figures for name in ("learned", "farthest_point", "random")}},
                        "8x11": {"T100": {name: {"dice": 0.9, "asd": 1.0, "hd95": 4.0}
                                          for name in ("learned", "farthest_point", "random")}}}}
    table = _largest_table(data, 100)
    assert [line for line in table if line.startswith("| 4 x 9")] == ["| 4 x 9 | " + " | ".join(
        ["0.850"] * 3 + ["1.50"] * 3 + ["5.25"] * 3) + " |"]
    assert not any(line.startswith("| 8 x 11") for line in table)       # rows from before the figure existed
    assert _largest_table(data, 33) == []
    same = {"dice": 0.8, "asd": 3.0, "hd95": 18.0, "dice_largest": 0.8, "asd_largest": 3.0, "hd95_largest": 18.0}
    one_piece = _largest_table({"configs": {"4x9": {"T100": {n: same for n in ("learned", "farthest_point", "random")}}}}, 100)
    assert len(one_piece) == 2 and "changes no figure" in one_piece[0]
