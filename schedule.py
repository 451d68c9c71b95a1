"""The run's schedule: how many steps, the learning rate over them, when to validate, and, under --time,
how they fit a wall-time budget.

    plan = epochs_plan(epochs=100, steps_per_epoch=92, warmup_epochs=1, val_every=1)   # --epochs
    plan = budget_plan(budget=1560, steps_per_epoch=64, warmup_epochs=1, val_every=1)  # --time 26m
    keeper = PlanKeeper(plan, started)   # times the run and re-fits a budget plan to what is left
    lr = peak * plan.factor(step)        # linear warm-up, then poly decay to 0 at plan.total_steps

A budget plan counts the whole command's wall time, start-up and validation included. It is fitted
first from the steps timed before the first loss read, then again every REFIT_SECONDS and after every
epoch from the seconds measured so far: a step, a validation, an epoch's end (its checkpoint). Warm-up is
fixed at the first fit; the decay always ends at the current total, so a run that ends early or late
still ends with the learning rate at 0.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import torch
import torch.distributed as dist

VAL_SHARE = 0.1  # under --time, validations (unless --val_every is given) take at most this of the budget
WARMUP_SHARE = 0.1  # under --time, warm-up at most this share of the planned steps
REFIT_SECONDS = 30.0  # a budget plan is re-fitted this often from the measured step time
TARGET = 0.99  # a budget plan aims at this share of the budget ...
EXIT_SECONDS = 2.0  # ... less the process's exit after the plan (closing the logs, PyTorch's teardown)
SHOWN_CHANGE = 0.02  # re-fits that move the planned steps by more than this share are printed
EVAL_COST = 1 / 3  # a validation pixel costs about a third of a training pixel (forward only)


@dataclass(frozen=True)
class Plan:
    """Steps of the run and their learning-rate factor. The run ends at total_steps (under --time,
    part-way through its last epoch). budget > 0: fitted to that many seconds of wall time from the
    measured step_s, val_s (one validation) and end_s (an epoch's end beyond validation)."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    val_every: int  # epochs between validations; the last epoch is always validated
    poly_power: float = 0.9
    budget: float = 0.0  # seconds; 0: a plan of --epochs
    val_every_free: bool = False  # a budget plan may space validations out (no --val_every given)
    step_s: float = 0.0  # 0: not measured yet
    val_s: float = 0.0
    end_s: float = 0.0

    @property
    def epochs(self) -> int:
        return -(-self.total_steps // self.steps_per_epoch)

    def factor(self, step: int) -> float:
        """The learning rate of step `step` over the peak: linear warm-up, then poly decay to 0."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay = max(1, self.total_steps - self.warmup_steps)
        return max(0.0, 1 - (step - self.warmup_steps) / decay) ** self.poly_power

    def validates(self, epochs_done: int) -> bool:
        return epochs_done % self.val_every == 0 or epochs_done >= self.epochs

    def ended_epochs(self, step: int) -> int:
        """Epochs ended (validated, saved) when `step` steps are done: fits are made before the end of
        the epoch of `step`, so that epoch's end is still to come."""
        return max(step - 1, 0) // self.steps_per_epoch

    def validations(self, step: int, total_steps: int, val_every: int) -> int:
        """Validations from `step` to the end of a run of total_steps validated every val_every epochs."""
        done, last = self.ended_epochs(step), -(-total_steps // self.steps_per_epoch)
        return last // val_every - done // val_every + (last % val_every != 0 and last > done)

    def seconds_needed(self, step: int, total_steps: int, val_every: int) -> float:
        """Seconds from `step` to the end of a run of total_steps validated every val_every epochs."""
        ends = -(-total_steps // self.steps_per_epoch) - self.ended_epochs(step)
        validations = self.validations(step, total_steps, val_every)
        return (total_steps - step) * self.step_s + validations * self.val_s + ends * self.end_s

    def text(self) -> str:
        """The plan as the run prints it."""
        every = "every epoch" if self.val_every == 1 else f"every {self.val_every} epochs"
        text = (
            f"{self.total_steps} steps ({self.epochs} epochs of {self.steps_per_epoch}), warm-up "
            f"{self.warmup_steps}, then poly decay to 0; validation {every} and after the last"
        )
        if self.budget:
            text += (
                f"; {self.step_s:.3g} s a step, {self.val_s:.3g} s a validation, to end at "
                f"{clock_time(self.budget)} (--time)"
            )
        return text


def epochs_plan(
    epochs: int, steps_per_epoch: int, warmup_epochs: float, val_every: int, poly_power: float = 0.9
) -> Plan:
    """The plan of --epochs: every step of every epoch, warm-up over warmup_epochs."""
    total = max(1, epochs * steps_per_epoch)
    warmup = min(int(warmup_epochs * steps_per_epoch), total - 1)
    return Plan(steps_per_epoch, total, warmup, val_every, poly_power)


def budget_plan(
    budget: float,
    steps_per_epoch: int,
    warmup_epochs: float,
    val_every: int,
    poly_power: float = 0.9,
    val_every_free: bool = True,
) -> Plan:
    """The plan of --time before any step is timed: warm-up over warmup_epochs, and a total far away
    (the learning rate holds at the peak after warm-up) until the first fit."""
    warmup = int(warmup_epochs * steps_per_epoch)
    total = max(10**9, warmup + 1)
    return Plan(steps_per_epoch, total, warmup, val_every, poly_power, budget, val_every_free)


def fitted(plan: Plan, step: int, left: float, first: bool = False) -> Plan:
    """`plan` re-made for `left` seconds from `step`: the most steps (none more, past the budget) whose
    training, validations and epoch ends fit; with val_every_free, the fewest epochs between validations
    that keep the whole run's within VAL_SHARE of the budget (after the first fit, never fewer than
    before).
    Warm-up is cut to WARMUP_SHARE of the steps at the `first` fit (or when the steps shrink below it)
    and kept otherwise."""
    most_epochs = -(-most_steps(plan, step, left, 10**9) // plan.steps_per_epoch)
    fewest = 1 if first else plan.val_every
    candidates = range(fewest, max(fewest, most_epochs) + 1) if plan.val_every_free else (plan.val_every,)
    for val_every in candidates:
        total = most_steps(plan, step, left, val_every)
        seconds = plan.validations(0, total, val_every) * plan.val_s  # the whole run's
        if seconds <= VAL_SHARE * plan.budget or val_every == candidates[-1]:
            break
    warmup = plan.warmup_steps
    if first or warmup > WARMUP_SHARE * total:
        warmup = min(warmup, max(step, int(WARMUP_SHARE * total)))
    return replace(plan, total_steps=total, val_every=val_every, warmup_steps=warmup)


def most_steps(plan: Plan, step: int, left: float, val_every: int) -> int:
    """The largest total number of steps that fits in `left` seconds from `step`; `step` itself (the
    run ends now) when not one more does."""
    low, high = step, step + 1 + int(max(left, 0) / max(plan.step_s, 1e-9))
    while low < high:  # seconds_needed grows with the total: the last total that fits
        middle = (low + high + 1) // 2
        if plan.seconds_needed(step, middle, val_every) <= left:
            low = middle
        else:
            high = middle - 1
    return low


def clock_time(seconds: float) -> str:
    """Seconds as h:mm:ss (or m:ss under an hour)."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PlanKeeper:
    """The run's plan over time: the whole run's elapsed and remaining time for the progress bar and
    the epoch line, and, for a budget plan, the timing of steps, validations and epoch ends and the
    re-fits made from it. `started`: time.monotonic() at the command's start; `spent`: wall seconds of
    the earlier processes of a resumed run; `val_steps`: a validation's cost in training steps, its
    estimate until one is timed. Under torch.distributed, rank 0's fit is everyone's."""

    def __init__(
        self, plan: Plan, started: float, spent: float = 0.0, step: int = 0, val_steps: float = 0.0
    ) -> None:
        self.plan, self.started, self.spent, self.val_steps = plan, started, spent, val_steps
        self.restart(step)
        self.last_fit = time.monotonic()

    def elapsed(self) -> float:
        return self.spent + time.monotonic() - self.started

    def restart(self, step: int) -> None:
        """Training starts (or resumes) at `step` now: the remaining time of an --epochs plan, and the
        steps timed for the next fit, are measured from here."""
        self.start = self.window = (step, time.monotonic())

    def text(self, step: int) -> str:
        """The whole run's elapsed and remaining time (the budget's, under --time)."""
        elapsed = self.elapsed()
        if self.plan.budget:
            return f"{clock_time(elapsed)} elapsed, {clock_time(max(0.0, self.plan.budget - elapsed))} left"
        first, since = self.start
        rate = (time.monotonic() - since) / (step - first) if step > first else None
        left = clock_time(rate * (self.plan.total_steps - step)) if rate is not None else "?"
        return f"{clock_time(elapsed)} elapsed, {left} left"

    def begin_epoch(self, step: int) -> None:
        self.window = (step, time.monotonic())

    def observe(self, step: int) -> str:
        """At a loss read: under --time, re-fit from the step time measured since the last fit when
        REFIT_SECONDS have passed (or none was made yet). Returns a line to print when the plan moved."""
        if not self.plan.budget:
            return ""
        first, since = self.window
        now = time.monotonic()
        measured = {}
        if step > first and (not self.plan.step_s or now - self.last_fit >= REFIT_SECONDS):
            seconds = (now - since) / (step - first)
            measured["step_s"] = (self.plan.step_s + seconds) / 2 if self.plan.step_s else seconds
            self.window, self.last_fit = (step, now), now
        elif not dist.is_initialized():
            return ""
        return self.refit(step, **measured)  # under torch.distributed every rank joins each fit

    def validated(self, seconds: float) -> None:
        if self.plan.budget:
            self.plan = replace(self.plan, val_s=seconds)

    def epoch_trained(self, step: int) -> str:
        """After an epoch's steps, before its validation: re-fit a budget plan (the run may end here). An
        epoch cut at the planned last step ends the run, whatever the clock says now."""
        if not self.plan.budget or step >= self.plan.total_steps:
            return ""
        return self.refit(step)

    def epochs_text(self) -> str:
        """The planned number of epochs, for the progress bar ("?" until a budget plan is fitted)."""
        return "?" if self.plan.budget and not self.plan.step_s else str(self.plan.epochs)

    def epoch_ended(self, seconds: float) -> None:
        """An epoch's end beyond validation (its checkpoint) took `seconds`."""
        if self.plan.budget:
            self.plan = replace(self.plan, end_s=seconds)

    def refit(self, step: int, **measured: float) -> str:
        """Re-fit to the time left, with the `measured` seconds (step_s, val_s, end_s) replaced; the line
        to print: the first plan, or a re-plan that moved the steps by more than SHOWN_CHANGE."""
        before = self.plan
        plan = replace(before, **measured)
        if plan.step_s and not plan.val_s:
            plan = replace(plan, val_s=plan.step_s * self.val_steps)
        if plan.step_s:
            left = TARGET * plan.budget - EXIT_SECONDS - self.elapsed()
            plan = fitted(plan, step, left, first=not before.step_s)
        self.plan = agreed(plan)
        if not before.step_s and plan.step_s:
            return f"plan: {self.plan.text()}"
        change = abs(self.plan.total_steps - before.total_steps) / before.total_steps
        if change <= SHOWN_CHANGE:
            return ""
        return (
            f"re-planned at step {step}: {self.plan.total_steps} steps ({self.plan.step_s:.3g} s a step), "
            f"validation every {self.plan.val_every} epoch(s)"
        )

    def state(self) -> dict:
        """What a checkpoint keeps: the plan and the wall seconds spent so far."""
        return {**asdict(self.plan), "spent": self.elapsed()}


def agreed(plan: Plan) -> Plan:
    """Under torch.distributed, rank 0's total steps, warm-up and validation spacing for every rank."""
    if not dist.is_initialized():
        return plan
    numbers = torch.tensor([plan.total_steps, plan.warmup_steps, plan.val_every], dtype=torch.int64)
    dist.broadcast(numbers, 0)
    total, warmup, val_every = (int(n) for n in numbers)
    return replace(plan, total_steps=total, warmup_steps=warmup, val_every=val_every)


def plan_from_state(state: dict) -> tuple[Plan, float]:
    """The plan and spent seconds of a checkpoint's "plan"."""
    fields = {k: v for k, v in state.items() if k != "spent"}
    return Plan(**fields), float(state.get("spent", 0.0))


def scheduler(optimizer: torch.optim.Optimizer, keeper: PlanKeeper) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate of the keeper's current plan at every step (a closure, so the scheduler's
    state holds only its step count)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: keeper.plan.factor(step))
