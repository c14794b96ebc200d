"""What every training loop needs: seeding, device choice, distributed set-up, atomic checkpoints, a CSV log.

A run folder holds config.json (the config it was started with), log.csv (one row per epoch) and
checkpoint.pt (written atomically at the end of every epoch, so a killed run loses at most the epoch in
flight). Checkpoints are our own files; they are loaded with torch.load(weights_only=True), which refuses
arbitrary pickled objects.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from core.atomic import atomic_path, write_text_atomic
from train.config import config_mtime, config_path


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"--device {name!r}: expected cpu, cuda, cuda:N or auto")
    return torch.device(name)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run directly)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the torchrun job described by the environment, if any (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank, world, local), device


def shutdown_distributed() -> None:
    if dist.is_initialized():
        # Every rank arrives before any tears its group down: rank 1 destroying its gloo group while rank 0 was still
        # writing the outputs once aborted at exit ("terminate called without an active exception", SIGABRT).
        dist.barrier()
        dist.destroy_process_group()


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def log(self) -> Path:
        return self.path / "log.csv"

    def start(self, config: dict, resume: bool) -> dict | None:
        """Prepare the folder; returns the checkpoint to resume from, or None for a fresh start."""
        if resume:
            if not self.checkpoint.is_file():
                raise FileNotFoundError(f"--resume: no checkpoint at {self.checkpoint}")
            saved = json.loads((self.path / "config.json").read_text())
            if saved != config:
                changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
                raise ValueError(f"--resume: {self.path / 'config.json'} differs from this run's config in {changed}")
            return torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        if self.checkpoint.exists():
            raise FileExistsError(f"{self.path} already holds a run; pass --resume to continue it, or choose "
                                  f"another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path / "config.json", json.dumps(config, indent=1, sort_keys=True))
        self.log.unlink(missing_ok=True)
        return None

    def save_checkpoint(self, state: dict) -> None:
        with atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def log_row(self, row: dict, completed_epochs: int) -> None:
        """Append one epoch's row; rows of epochs a resumed run redoes are dropped first."""
        rows = []
        if self.log.is_file():
            with self.log.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < completed_epochs]
        rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        with atomic_path(self.log) as tmp:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[-1]))
                writer.writeheader()
                writer.writerows(rows)


def open_run(out_dir: str | os.PathLike, snapshot: dict, resume: bool, device: str
             ) -> tuple[RunFolder, dict | None, Distributed, torch.device]:
    """Start or resume the run in out_dir on this process's device: (run, checkpoint or None, place, device).
    Rank 0 prepares the folder; the other ranks wait for it and read the same checkpoint."""
    run = RunFolder(out_dir)
    place, dev = init_distributed(resolve_device(device))
    if not place.active:
        return run, run.start(snapshot, resume), place, dev
    # Rank 0 prepares the folder and tells the others how it went, so a refused start (an existing run, a
    # changed config) stops every rank at once instead of leaving them in a barrier until the timeout.
    outcome, state = ["ok"], None
    if place.is_main:
        try:
            state = run.start(snapshot, resume)
        except Exception as e:
            outcome = [f"{type(e).__name__}: {e}"]
            failure = e
    dist.broadcast_object_list(outcome, src=0)
    if outcome[0] != "ok":
        shutdown_distributed()
        if place.is_main:
            raise failure
        raise RuntimeError(f"rank 0 could not start the run: {outcome[0]}")
    if not place.is_main and resume:
        state = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    return run, state, place, dev


def finished_already(run: RunFolder, state: dict | None, epochs: int, outputs: tuple[str, ...]) -> bool:
    """True for a resumed run whose checkpoint holds all `epochs` and whose final `outputs` exist: it is left as it
    is (nothing rewritten, so nothing downstream looks newer) and says so."""
    if state is None or int(state["epoch"]) < epochs or not all((run.path / o).is_file() for o in outputs):
        return False
    print(f"{run.path}: already finished ({epochs} epochs); nothing to do", file=sys.stderr)
    shutdown_distributed()
    return True


def epoch_order(n: int, seed: int, epoch: int, place: Distributed, limit: int = 0) -> torch.Tensor:
    """This rank's share of a permutation that depends only on (seed, epoch): a resumed run sees exactly the
    batches an uninterrupted one would. Shards are equally long, so every rank takes the same number of steps.
    With `limit`, the epoch is the permutation's first `limit` samples (a fresh draw every epoch)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    if limit:
        order, n = order[:limit], min(n, limit)
    # Equal shards: a rank with one extra batch would wait forever in DDP's all-reduce. The few samples cut
    # differ every epoch.
    return order[: n - n % place.world_size][place.rank::place.world_size]


def set_aside_if_stale(run: Path, config: str, inputs=()) -> Path | None:
    """A run started before its config file last changed, or before one of its `inputs` (files it was trained from,
    such as the SAE a cGAN learns the embeddings of) was rewritten, may have been trained on something else: move it
    to RUN.before-TIME (kept, not deleted) so the step trains afresh; returns where it went."""
    started = run / "config.json"
    if not started.is_file():
        return None
    newer = [p for p in map(Path, inputs) if p.is_file() and p.stat().st_mtime > started.stat().st_mtime]
    if started.stat().st_mtime >= config_mtime(config) and not newer:
        return None
    aside = run.with_name(f"{run.name}.before-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started.stat().st_mtime))}")
    run.rename(aside)
    what = f"{newer[0]}, which was rewritten since" if newer else f"{config_path(config)} (or a config it extends)"
    print(f"{run} predates {what}: moved to {aside}; training afresh", flush=True)
    return aside


def run_suffix(kind: str) -> str:
    """The suffix of a shape run's folder for a set kind: sae, sae_bp4d, sae_arkit (cgan_..., seeds_...)."""
    return "" if kind == "facescape" else f"_{kind}"
