"""The run's plan: --epochs' schedule, and --time's fit to a wall-time budget."""

from __future__ import annotations

import pytest
import torch

from schedule import (
    Plan,
    PlanKeeper,
    budget_plan,
    clock_time,
    epochs_plan,
    fitted,
    plan_from_state,
    scheduler,
)


def test_an_epochs_plan_warms_up_linearly_then_decays_as_poly_to_zero_at_the_last_step():
    plan = epochs_plan(epochs=10, steps_per_epoch=20, warmup_epochs=1, val_every=1)
    assert (plan.total_steps, plan.warmup_steps, plan.epochs) == (200, 20, 10)
    assert plan.factor(0) == pytest.approx(1 / 20) and plan.factor(19) == pytest.approx(1.0)
    assert plan.factor(20) == pytest.approx(1.0)
    assert plan.factor(110) == pytest.approx(0.5**0.9)
    assert plan.factor(200) == 0.0


def test_an_epochs_plan_validates_every_val_every_epochs_and_after_the_last():
    plan = epochs_plan(epochs=7, steps_per_epoch=5, warmup_epochs=0, val_every=3)
    assert [e for e in range(1, 8) if plan.validates(e)] == [3, 6, 7]


def test_the_scheduler_follows_the_keeper_s_plan_as_it_changes():
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    keeper = PlanKeeper(epochs_plan(2, 10, 0, 1, poly_power=1.0), started=0.0)
    lr_scheduler = scheduler(optimizer, keeper)
    for _ in range(5):
        optimizer.step()
        lr_scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1 - 5 / 20)
    keeper.plan = epochs_plan(1, 10, 0, 1, poly_power=1.0)  # a re-fit to fewer steps
    optimizer.step()
    lr_scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1 - 6 / 10)
    assert "lr_lambdas" not in lr_scheduler.state_dict() or lr_scheduler.state_dict()["lr_lambdas"] == [None]


def timed(steps_per_epoch=50, step_s=1.0, val_s=10.0, end_s=0.0, val_every=1, free=False, budget=1e6) -> Plan:
    plan = budget_plan(budget, steps_per_epoch, warmup_epochs=1, val_every=val_every, val_every_free=free)
    return Plan(**{**plan.__dict__, "step_s": step_s, "val_s": val_s, "end_s": end_s})


def test_a_fit_takes_the_most_steps_whose_training_validations_and_epoch_ends_fit():
    plan = timed(steps_per_epoch=50, step_s=1.0, val_s=10.0, end_s=2.0)
    # 3 epochs: 150 s of steps + 3 validations + 3 ends = 186 s; each step more opens a 4th epoch (+12 s)
    total = fitted(plan, step=0, left=197.0).total_steps
    assert total == 150
    assert plan.seconds_needed(0, total, 1) <= 197.0 < plan.seconds_needed(0, total + 1, 1)
    assert fitted(plan, step=0, left=199.0).total_steps == 151


def test_a_fit_from_the_middle_of_a_run_counts_only_what_is_left():
    plan = timed(steps_per_epoch=50, step_s=1.0, val_s=10.0)
    # at step 120 (epoch 3 in progress): 30 steps + 1 validation finish epoch 3 in 40 s
    assert fitted(plan, step=120, left=40.0).total_steps == 150
    assert fitted(plan, step=120, left=5.0).total_steps == 120  # no step more fits: the run ends now


def test_a_fit_spaces_validations_out_to_keep_them_within_a_tenth_of_the_budget_when_free():
    plan = timed(steps_per_epoch=10, step_s=1.0, val_s=20.0, free=True, budget=1000.0)
    spaced = fitted(plan, step=0, left=1000.0, first=True)
    validations = spaced.validations(0, spaced.total_steps, spaced.val_every)
    assert spaced.val_every > 1 and validations * 20.0 <= 100.0
    near_the_end = fitted(spaced, step=spaced.total_steps - 15, left=40.0)
    assert near_the_end.val_every == spaced.val_every  # the whole run's share: no sparser at the end
    given = fitted(timed(steps_per_epoch=10, step_s=1.0, val_s=20.0, free=False, budget=1000.0), 0, 1000.0)
    assert given.val_every == 1  # --val_every given: kept, fewer steps instead


def test_the_first_fit_keeps_warm_up_within_a_tenth_of_the_steps():
    plan = timed(steps_per_epoch=400, step_s=1.0, val_s=0.0)  # warm-up of one epoch: 400 steps
    first = fitted(plan, step=20, left=1000.0, first=True)
    assert first.total_steps == 1020 and first.warmup_steps == 102
    assert fitted(first, step=40, left=1000.0).warmup_steps == 102  # kept after the first fit


def test_the_keeper_fits_a_budget_plan_at_the_first_loss_read_and_refits_when_steps_slow_down(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("schedule.time.monotonic", lambda: now[0])
    plan = budget_plan(600.0, steps_per_epoch=100, warmup_epochs=0, val_every=1, val_every_free=False)
    keeper = PlanKeeper(plan, started=100.0, val_steps=0.0)
    now[0] += 20.0  # 20 steps at 1 s
    assert keeper.observe(20).startswith("plan: ")
    assert keeper.plan.total_steps == 592 and keeper.plan.step_s == pytest.approx(1.0)  # 99%, less 2 s
    now[0] += 10.0  # 10 more steps, still 1 s: no re-fit before REFIT_SECONDS
    assert keeper.observe(30) == "" and keeper.plan.total_steps == 592
    now[0] += 90.0  # steps 20-60 in 100 s: 2.5 s a step; the estimate moves halfway, to 1.75 s
    message = keeper.observe(60)
    assert message.startswith("re-planned at step 60")
    assert keeper.plan.step_s == pytest.approx(1.75)
    assert keeper.plan.total_steps == 60 + int((592 - 120) / 1.75)  # 120 s spent


def test_the_keeper_tells_the_whole_run_s_elapsed_and_remaining_time(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("schedule.time.monotonic", lambda: now[0])
    keeper = PlanKeeper(epochs_plan(4, 100, 0, 1), started=1000.0, step=100)
    assert keeper.text(100) == "0:00 elapsed, ? left"
    now[0] += 150  # 50 steps in 150 s: 250 steps left take 750 s
    assert keeper.text(150) == "2:30 elapsed, 12:30 left"
    budget = PlanKeeper(budget_plan(1800.0, 100, 0, 1), started=1000.0 - 60, spent=300.0)
    assert budget.text(0) == "8:30 elapsed, 21:30 left"  # 300 s before the resume, 60 + 150 s since


def test_a_checkpoint_s_plan_state_gives_back_the_plan_and_the_seconds_spent(monkeypatch):
    monkeypatch.setattr("schedule.time.monotonic", lambda: 500.0)
    keeper = PlanKeeper(timed(), started=400.0, spent=30.0)
    plan, spent = plan_from_state(keeper.state())
    assert plan == keeper.plan and spent == pytest.approx(130.0)
    assert all(isinstance(v, (int, float, bool)) for v in keeper.state().values())  # weights_only


@pytest.mark.parametrize(("seconds", "text"), [(59.4, "0:59"), (61, "1:01"), (3725, "1:02:05")])
def test_clock_time_is_m_ss_under_an_hour_and_h_mm_ss_above(seconds, text):
    assert clock_time(seconds) == text


def test_an_epoch_cut_at_the_planned_last_step_ends_the_run_even_with_time_left(monkeypatch):
    monkeypatch.setattr("schedule.time.monotonic", lambda: 100.0)
    plan = Plan(**{**timed(steps_per_epoch=20, step_s=0.1, val_s=0.0).__dict__, "budget": 1000.0})
    keeper = PlanKeeper(Plan(**{**plan.__dict__, "total_steps": 75}), started=100.0)
    assert keeper.epoch_trained(75) == "" and keeper.plan.total_steps == 75  # no re-fit past the end
    keeper.epoch_trained(60)  # an epoch that ended on its own: re-fitted to the time left
    assert keeper.plan.total_steps > 75
    assert PlanKeeper(budget_plan(60.0, 20, 1, 1), started=0.0).epochs_text() == "?"
