"""The demo end to end on a very small dataset and budget; a second run reuses everything."""
from nnocc.demo import DemoSettings, format_table, run_demo


def test_demo_runs_and_reuses_its_work(data_folders):
    settings = DemoSettings(dataset_id=903, budget_minutes=0.05, device="cpu", num_training=5, num_test=1,
                            tta=False, num_processes=1, shape=(20, 56, 56))
    result = run_demo(data_folders, settings)
    table = format_table(result)
    assert "kidney" in table and "Dice" in table and "progress.png" in table
    assert (result["fold_folder"] / "progress.png").is_file()
    assert result["overlays"] and all(p.endswith(".png") for p in result["overlays"])
    checkpoint = result["fold_folder"] / "checkpoint_final.pth"
    stamp = checkpoint.stat().st_mtime_ns
    again = run_demo(data_folders, settings)
    assert checkpoint.stat().st_mtime_ns == stamp        # training is not repeated
    assert again["summary"]["foreground_mean"] == result["summary"]["foreground_mean"]
