"""A GPU-sized plan on a CPU: the measured pace, and the command that plans for the CPU instead."""
import dataclasses

from nnocc.cli.environment import dataset_paths
from nnocc.training.cpu_speed import CpuSpeedProbe, cpu_speed_advice
from nnocc.training.run import TrainingSettings, prepare_run


def test_probe_skips_the_first_iteration():
    probe = CpuSpeedProbe(skip=1, measure=3)
    assert [probe.add(s) for s in (30.0, 1.0, 2.0, 3.0)] == [False, False, False, True]
    assert probe.seconds_per_iteration() == 2.0


def test_advice_for_a_gpu_sized_plan_names_the_cpu_plan(trained_folders):
    run = prepare_run(dataset_paths(501), "3d_occ", TrainingSettings(fold=2, time_budget_minutes=30))
    text = cpu_speed_advice(run, 18.0)
    assert "18.00 s per iteration" in text and "an epoch of 250 iterations takes about 75.0 min" in text
    assert "the 30-minute budget allows about 100 iterations" in text and "epochs about" not in text
    unbudgeted = dataclasses.replace(run, settings=TrainingSettings(fold=2))
    assert "1000 epochs about 1250.0 h" in cpu_speed_advice(unbudgeted, 18.0)
    assert "nnocc_plan_experiment" not in text      # the fixture's plan already targets 1 GB
    big = dataclasses.replace(run, plans=dataclasses.replace(run.plans, gpu_memory_target_gb=8.0))
    text = cpu_speed_advice(big, 18.0)
    assert "This plan was made for a 8 GB GPU" in text
    assert ("nnocc_plan_experiment -d Dataset501_SmallCT --gpu_memory_target 1 --plans_name nnoccPlans_1GB"
            in text) and "nnocc_train Dataset501_SmallCT 3d_occ 2 -p nnoccPlans_1GB" in text
