"""The training step and evaluation, shared by main.py and the benchmarks: the criterion (cross-entropy,
plus soft Dice), class weights, one optimisation step, one epoch, and validation over a whole data set.
"""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from dataset import set_epoch, to_device
from inference import PLAIN, InferenceOptions, band_logits
from layouts import IGNORE_INDEX
from metrics import ConfusionMatrix
from schedule import PlanKeeper
from utils import Progress, Runtime, autocast


def get_class_weights(counts: np.ndarray, mode: str, device: torch.device) -> torch.Tensor | None:
    """Loss weight of each class from the training masks' pixel counts (images x classes); None for
    --class_weights none. median_freq (Eigen & Fergus 2015, SegNet): the frequency of a class is its
    pixels over the labelled pixels of the images where it appears; its weight is the median frequency
    over its own. enet (Paszke et al. 2016), milder: 1 / ln(1.02 + p), p the class's share of all
    labelled pixels, so weights lie between 1.4 (p = 1) and 50.5 (p near 0).
    A class no training image holds gets weight 0."""
    if mode == "none":
        return None
    pixels = counts.sum(0)
    seen = pixels > 0
    weights = np.zeros(counts.shape[1])
    if mode == "enet":
        weights[seen] = 1 / np.log(1.02 + pixels[seen] / pixels.sum())
    else:
        freq = pixels[seen] / (counts.sum(1, keepdims=True) * (counts > 0)).sum(0)[seen]
        weights[seen] = np.median(freq) / freq
    return torch.tensor(weights, dtype=torch.float32, device=device)


def criterion(
    logits: torch.Tensor,
    masks: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    loss: str = "ce",
) -> torch.Tensor:
    """Cross-entropy of logits N x C x H x W against masks N x H x W over non-void pixels (their mean,
    or sum; weighted by class when `weight` is given), plus soft_dice_loss for loss="ce+dice", in
    float32 whatever the autocast precision."""
    logits = logits.float()
    ce = F.cross_entropy(logits, masks, weight=weight, ignore_index=IGNORE_INDEX, reduction=reduction)
    return ce + soft_dice_loss(logits, masks) if loss == "ce+dice" else ce


Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, masks) -> mean loss


def get_criterion(loss: str, weight: torch.Tensor | None = None) -> Criterion:
    """The training loss of --loss (ce, ce+dice) with the class weights of --class_weights."""
    return functools.partial(criterion, weight=weight, loss=loss)


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean over classes of the soft Dice score (2 sum(p y) + eps) / (sum p + sum y + eps), summed
    over the batch's non-void pixels, p the softmax probabilities (N x C x H x W), y the one-hot masks."""
    valid = (masks != IGNORE_INDEX).unsqueeze(1)
    probs = logits.softmax(1) * valid
    onehot = F.one_hot(masks.masked_fill(~valid[:, 0], 0), logits.shape[1]).permute(0, 3, 1, 2) * valid
    dims = (0, 2, 3)
    overlap, total = (probs * onehot).sum(dims), probs.sum(dims) + onehot.sum(dims)
    return 1 - ((2 * overlap + eps) / (total + eps)).mean()


class NonFiniteLoss(Exception):
    pass


class Stopped(Exception):
    """The run stopped on a signal after writing a step checkpoint; args: the signal's name."""


class Interruption:
    """SIGTERM (what SLURM, Kubernetes and cloud preemption send) and Ctrl-C, caught to stop after the
    step in progress, and the --save_every timer. A second signal stops at once."""

    def __init__(self, save_every: float = 0.0) -> None:
        self.save_every, self.last_save, self.signal, self.stopping = save_every, time.monotonic(), "", False
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._caught)

    def _caught(self, number: int, frame: object) -> None:
        if self.signal:
            raise KeyboardInterrupt
        self.signal = signal.Signals(number).name

    def due(self, synced: bool) -> tuple[bool, bool]:
        """(write a step checkpoint now, then stop): every process agrees, deciding at `synced` steps
        only under torch.distributed (there a host sync is already made; elsewhere every step)."""
        if dist.is_initialized() and not synced:
            return False, False
        stop = bool(self.signal)
        save = bool(self.save_every) and time.monotonic() - self.last_save >= self.save_every
        if dist.is_initialized():  # a tensor only where the processes must agree
            flags = torch.tensor([stop, save], dtype=torch.int32)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            stop, save = bool(flags[0]), bool(flags[1])
        return stop or save, stop

    def save_now(self, synced: bool, last: bool) -> bool:
        """After a step: whether to write a step checkpoint, for the timer (not after the epoch's last
        step: its own checkpoint follows) or a signal (even after the last step: resuming then
        validates the epoch, as the run would have). Call saved() once it is written."""
        due, self.stopping = self.due(synced)
        return self.stopping or (due and not last)

    def saved(self) -> None:
        """A step checkpoint is written: the timer starts again; Stopped when a signal asked for it."""
        self.last_save = time.monotonic()
        if self.stopping:
            raise Stopped(self.signal)


def train_step(
    model: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp_dtype: torch.dtype | None,
    loss_fn: Criterion = criterion,
) -> torch.Tensor:
    """Forward, backward and update on one normalised batch; returns the loss, still on the device."""
    with autocast(images.device, amp_dtype):
        loss = loss_fn(model(images), masks)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


@dataclass(frozen=True)
class EpochObserver:
    """What an epoch of training reports to, and takes its orders from: the run's plan (progress, re-fits,
    the last step), the signals and timer of step checkpoints, and where losses and step checkpoints go."""

    keeper: PlanKeeper
    interruption: Interruption
    log: Callable[[int, float, float], None]  # (step, mean loss, lr), every print_freq steps
    save_step: Callable[[int, int], None]  # (step, batches of this epoch done): write a step checkpoint
    print_freq: int = 20


def train_one_epoch(
    model: torch.nn.Module,
    loss_fn: Criterion,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    loader: DataLoader,
    runtime: Runtime,
    observer: EpochObserver,
    *,
    epoch: int,
    step: int,
    skip: int = 0,
) -> int:
    """One pass over the training loader (its first `skip` batches left out: done before a step
    checkpoint), or up to the plan's last step; returns the global step. The loss is read back from the
    device only every print_freq steps (LossReads), so the step never waits for the host. When the
    observer's interruption says so after a step, observer.save_step(step, batches done this epoch) writes
    a step checkpoint, and on a signal the epoch ends there with Stopped."""
    keeper, interruption = observer.keeper, observer.interruption
    model.train()
    set_epoch(loader, epoch, skip)
    reads = LossReads(runtime.device, observer.print_freq, epoch, observer.log)
    with epoch_bar(loader, runtime, epoch, skip, keeper) as bar:
        for i, (images, masks) in enumerate(loader, start=skip):
            images, masks = to_device(
                images, masks, runtime.device, runtime.channels_last, loader.dataset.format
            )
            loss = train_step(model, images, masks, optimizer, scaler, runtime.amp_dtype, loss_fn)
            scheduler.step()
            step += 1
            bar.update(len(images) * runtime.world_size)
            last = i + 1 == len(loader) or step >= keeper.plan.total_steps
            synced = reads.add(loss, step, last)
            if synced:
                lr = optimizer.param_groups[0]["lr"]
                reads.read(step, lr)
                show_progress(bar, reads.mean, lr, step, keeper, runtime.rank == 0)
            if interruption.save_now(synced, last):
                reads.check()
                observer.save_step(step, i + 1)
                interruption.saved()  # and Stopped, on a signal
            if last:
                break
    return step


class LossReads:
    """The epoch's losses, summed on the device and read back every print_freq steps (and at the end):
    their mean is logged with log(step, mean loss, lr). The first non-finite loss is noted on the
    device too, and raised as NonFiniteLoss at the next read."""

    def __init__(
        self, device: torch.device, print_freq: int, epoch: int, log: Callable[[int, float, float], None]
    ) -> None:
        self.print_freq, self.epoch, self.log = print_freq, epoch, log
        self.running = torch.zeros((), device=device)
        self.count, self.mean = 0, float("nan")
        self.first_bad_step = torch.full((), -1, device=device, dtype=torch.long)  # no host sync

    def add(self, loss: torch.Tensor, step: int, last: bool) -> bool:
        """Add a step's loss; True when it is time to read (every print_freq steps, and the last)."""
        self.running += loss
        self.count += 1
        bad = (self.first_bad_step < 0) & ~torch.isfinite(loss)
        self.first_bad_step = torch.where(bad, step, self.first_bad_step)
        return self.count == self.print_freq or last

    def read(self, step: int, lr: float) -> None:
        self.check()
        self.mean = self.running.item() / self.count
        self.running.zero_()
        self.count = 0
        self.log(step, self.mean, lr)

    def check(self) -> None:
        check_finite(self.first_bad_step, self.epoch)


def epoch_bar(loader: DataLoader, runtime: Runtime, epoch: int, skip: int, keeper: PlanKeeper) -> Progress:
    """The epoch's progress on rank 0, in images (of every process), from the `skip` batches done."""
    images_a_batch = loader.batch_size * runtime.world_size
    return Progress(
        len(loader) * images_a_batch,
        f"train {epoch + 1}/{keeper.epochs_text()}",
        initial=skip * images_a_batch,
        enabled=runtime.rank == 0,
    )


def show_progress(
    bar: Progress, loss: float, lr: float, step: int, keeper: PlanKeeper, is_main: bool
) -> None:
    """The loss, learning rate and whole-run time; under --time the keeper re-fits here, and a plan that
    moved is printed."""
    message = keeper.observe(step)
    if message and is_main:
        tqdm.write(message)
    bar.show(loss=f"{loss:.4f}", lr=f"{lr:.2e}", run=keeper.text(step))


def check_finite(first_bad_step: torch.Tensor, epoch: int) -> None:
    bad = first_bad_step
    if dist.is_initialized():
        bad = bad.clone()
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if bad.item() >= 0:
        raise NonFiniteLoss(f"non-finite loss at epoch {epoch + 1}, step {bad.item()}")


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    runtime: Runtime,
    print_freq: int,
    options: InferenceOptions = PLAIN,
) -> dict:
    """Metrics of one confusion matrix over the whole validation set, and the pixel-mean loss; each
    image predicted whole (or in tiles above --tile) at its own size, as tools/predict.py predicts it.
    Pass fused_for_inference(model): the same numbers as the model in eval mode, faster."""
    model.eval()
    device = runtime.device
    confusion = ConfusionMatrix(loader.dataset.layout.num_classes, IGNORE_INDEX)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    pixels = torch.zeros((), device=device, dtype=torch.float64)
    total = len(loader.dataset)  # every rank's share together: the bar counts for all processes
    with Progress(total, "val", enabled=runtime.rank == 0) as bar:
        for i, (images, masks) in enumerate(loader):
            masks = masks.to(device, non_blocking=True).long()
            bands = band_logits(model, images, device, options, loader.dataset.format)
            for top, bottom, logits in bands:
                rows = masks[:, top:bottom]
                loss_sum += criterion(logits, rows, reduction="sum")
                pixels += (rows != IGNORE_INDEX).sum()
                confusion.update(logits.argmax(1), rows)
            bar.update(len(images) * runtime.world_size)
            if (i + 1) % print_freq == 0:
                bar.show(loss=f"{(loss_sum / pixels.clamp(min=1)).item():.4f}")
    confusion.all_reduce()
    if dist.is_initialized():
        dist.all_reduce(loss_sum)
        dist.all_reduce(pixels)
    metrics = confusion.compute()
    metrics["loss"] = (loss_sum / pixels.clamp(min=1)).item()
    return metrics
