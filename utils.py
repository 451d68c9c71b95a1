"""Small shared helpers: user errors, durations, the process's runtime (device, precision, distributed
set-up, seeding), atomic file writes (a full disk named), progress lines. (Image normalisation: images.py.)"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from tqdm import tqdm

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UserError(Exception):
    """Bad input from the user (a path, a file, a flag): shown as one line, exit status 2."""


def user_error_message(error: UserError) -> str:
    """The one-line message of a UserError, also when a DataLoader worker re-raised it with its traceback."""
    message = str(error).strip()
    if "Traceback" in message:
        message = message.splitlines()[-1].split(": ", 1)[-1]
    return message


def duration_seconds(text: str) -> float:
    """A duration flag's type: "90s", "20m", "1.5h", "1h30m" (or plain seconds) -> seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    total, number = 0.0, ""
    try:
        for char in text.strip().lower():
            if char in units:
                total, number = total + float(number) * units[char], ""
            else:
                number += char
        total += float(number) if number else 0.0
    except ValueError:
        total = -1.0
    if total < 0 or not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: write it as 90s, 20m, 1.5h or 1h30m")
    return total


@contextlib.contextmanager
def reading(path: Path, what: str = "", fix: str = "") -> Iterator[None]:
    """An OSError inside the block becomes the UserError "cannot read <what> <path>: <why>[; <fix>]"."""
    try:
        yield
    except OSError as error:
        raise UserError(
            f"cannot read {what + ' ' if what else ''}{path}: {error}" + (f"; {fix}" if fix else "")
        ) from None


def process_age() -> float:
    """Seconds since this process started (from /proc on Linux; 0 elsewhere: counted from now)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def exit_status(command: Callable[[], int | None]) -> int:
    """Run a command's body; a UserError becomes one line on stderr and exit status 2 (every command of
    this repository ends this way on bad input). Returns the body's status (None = 0)."""
    try:
        return command() or 0
    except UserError as error:
        print(f"error: {user_error_message(error)}", file=sys.stderr)
        return 2


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA kernels (the NLL loss) have no deterministic version; warn, do not stop.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True  # fixed crop and canvas sizes: autotuning pays off


def init_distributed() -> tuple[int, int, int]:
    """Join the process group that torchrun describes; returns (rank, local_rank, world_size)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 0, 1
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    if restart == "0":
        dist.init_process_group(backend)
    else:  # torchrun's store outlives a failed group: keys of its own, not the dead processes' addresses
        store, _, _ = next(dist.rendezvous("env://"))
        store = dist.PrefixStore(f"restart{restart}/", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    return rank, local_rank, world_size


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process; no-op without
    torch.distributed. DDP broadcasts them only at the start of each forward, so after an epoch each
    process holds the statistics of its own last batch, and only rank 0's are saved."""
    if dist.is_available() and dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


@contextlib.contextmanager
def replaced_atomically(path: Path, tag: str = "") -> Iterator[Path]:
    """Yields a temporary path beside `path` to write; when the block succeeds it is renamed to `path`,
    otherwise removed. Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}{tag}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # left only when the block failed before the rename


def link_or_copy(src: Path, dst: Path) -> None:
    """Make `dst` a hard link to `src`, or a copy flushed to disk where the file system has no hard links
    (some network and FUSE file systems)."""
    dst.unlink(missing_ok=True)  # a leftover of a killed run
    try:
        os.link(src, dst)
    except OSError:
        with open(src, "rb") as source, open(dst, "wb") as copy:
            shutil.copyfileobj(source, copy)
            copy.flush()
            os.fsync(copy.fileno())


def tensor_bytes(obj: object) -> int:
    """Bytes of the tensors in a (nested) dict or list: about what torch.save writes of it."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(value) for value in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(value) for value in obj)
    return 0


@contextlib.contextmanager
def disk_space_named(path: Path, needed: int) -> Iterator[None]:
    """A write that fails for want of space (ENOSPC, or torch.save's "unexpected pos" when the disk filled
    under it) becomes a UserError naming the file, the space free and the space needed."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        free = shutil.disk_usage(path.parent).free
        if not (getattr(error, "errno", None) == errno.ENOSPC or free < needed):
            raise
        raise UserError(
            f"cannot write {path}: the disk is full ({free / 2**20:.1f} MiB free on {path.parent}, the file "
            f"needs about {needed / 2**20:.1f} MiB); free some space or write elsewhere (--save_dir)"
        ) from None


def save_atomically(obj: dict, *paths: Path) -> None:
    """torch.save to a temporary file, flushed to disk, then renamed: no path is ever half-written. A
    full disk is a UserError naming the file and the space needed (the files written before are kept).

    With several paths the object is serialised once: the others are hard links to the same file (or
    copies), put in place in the order given, and the last path comes last. Later saves replace files
    rather than write into them, so a link never changes after the fact."""
    *others, last = paths
    with disk_space_named(last, tensor_bytes(obj)), replaced_atomically(last) as tmp:  # tmp gone first
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        for path in others:
            with replaced_atomically(path) as other_tmp:
                link_or_copy(tmp, other_tmp)


def save_image_atomically(image: Image.Image, path: Path, **save_options) -> None:
    """Save a PIL image as PNG via a temporary file and a rename: a killed run never leaves half a file."""
    with replaced_atomically(path, tag=f".{os.getpid()}") as tmp:
        image.save(tmp, format="PNG", **save_options)


def holds_mask(path: Path, mask: np.ndarray) -> bool:
    """True when `path` is an 8-bit grayscale image of exactly `mask`: a converter's re-run leaves it
    alone. False for a missing, truncated or different file."""
    try:
        with Image.open(path) as existing:
            return existing.mode == "L" and np.array_equal(np.asarray(existing), mask)
    except (OSError, ValueError):
        return False


def write_text_atomically(path: Path, text: str) -> None:
    """Write text via a temporary file and a rename: readers see the old or the new file, never half."""
    with replaced_atomically(path) as tmp:
        tmp.write_text(text)


def select_device(choice: str, local_rank: int = 0) -> torch.device:
    """The device for --device `choice` (auto: CUDA when present), the local_rank-th GPU."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("--device cuda given but no CUDA device is available: use --device cpu")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # --amp's names


def amp_name(amp_dtype: torch.dtype | None) -> str:
    """The --amp name of a precision: off, bf16 or fp16."""
    return {dtype: name for name, dtype in AMP_DTYPES.items()}[amp_dtype]


def select_amp(choice: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for --amp `choice` on `device` (None = float32)."""
    if choice == "off":
        return None
    if choice == "auto":
        if device.type == "cuda":  # native bf16 from Ampere (8.0) on; T4 and V100 emulate it: fp16 there
            return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16
        return (
            torch.bfloat16
            if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
            else None
        )
    return AMP_DTYPES[choice]


def select_channels_last(choice: str, amp_dtype: torch.dtype | None) -> bool:
    """NHWC memory format for --channels_last on, or for auto with mixed precision (where it pays)."""
    return choice == "on" or (choice == "auto" and amp_dtype is not None)


def select_compute(
    device: str, amp: str, channels_last: str, local_rank: int = 0
) -> tuple[torch.device, torch.dtype | None, bool]:
    """The device, autocast dtype (None: float32) and channels-last choice of --device, --amp and
    --channels_last: one choice for training, tools/predict.py and tools/figures.py."""
    chosen = select_device(device, local_rank)
    amp_dtype = select_amp(amp, chosen)
    return chosen, amp_dtype, select_channels_last(channels_last, amp_dtype)


def autocast(device: torch.device, amp_dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to amp_dtype on `device`, or a disabled one for None (float32)."""
    return torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)


@dataclass(frozen=True)
class Runtime:
    """Where and how this process computes, decided once from the flags by `setup_runtime`."""

    rank: int  # 0 unless under torchrun
    local_rank: int
    world_size: int
    device: torch.device
    amp_dtype: torch.dtype | None  # None: float32
    channels_last: bool
    num_workers: int  # data loader processes


def setup_runtime(
    device: str, amp: str, channels_last: str, num_workers: int, seed: int, deterministic: bool
) -> Runtime:
    """Join torchrun's process group (if any), pick the device and precision, seed everything."""
    rank, local_rank, world_size = init_distributed()
    chosen, amp_dtype, memory_format = select_compute(device, amp, channels_last, local_rank)
    seed_everything(seed, deterministic)
    if num_workers < 0:
        # On a CPU the workers would take cores from the compute threads: load in the main process.
        num_workers = min(8, os.cpu_count() or 1) if chosen.type == "cuda" else 0
    if chosen.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(
        rank=rank,
        local_rank=local_rank,
        world_size=world_size,
        device=chosen,
        amp_dtype=amp_dtype,
        channels_last=memory_format,
        num_workers=num_workers,
    )


LOG_SECONDS = 60.0  # without a terminal, a progress line at most this often


class Progress:
    """A progress count in images: a tqdm bar on a terminal; where standard error is not one (a log
    file, nohup, a cluster's job log) plain lines instead of carriage-return frames, at the first
    show() and then at most every LOG_SECONDS. Shown only where `enabled` (rank 0)."""

    def __init__(
        self, total: int, desc: str, initial: int = 0, enabled: bool = True, unit: str = "img"
    ) -> None:
        terminal = sys.stderr.isatty()
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit=unit,
            disable=not (enabled and terminal),
            dynamic_ncols=True,
            leave=False,
        )
        self.lines = enabled and not terminal
        self.desc, self.total, self.done, self.unit, self.shown = desc, total, initial, unit, None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def update(self, count: int) -> None:
        self.bar.update(count)
        self.done += count

    def show(self, **fields: str) -> None:
        """The bar's postfix, or (without a terminal) a line when one is due."""
        self.bar.set_postfix(**fields)
        now = time.monotonic()
        if self.lines and (self.shown is None or now - self.shown >= LOG_SECONDS):
            share = f"{100 * self.done / max(self.total, 1):.0f}% ({self.done}/{self.total} {self.unit})"
            details = "".join(f", {name} {value}" for name, value in fields.items())
            print(f"{self.desc}: {share}{details}", file=sys.stderr, flush=True)
            self.shown = now
