"""The texture model's frontal UV crops: read from a set that stores them, or synthesised from its stored meshes
while training runs, in worker processes, for a set that does not (the paper set at 512 px would need 13 GB).

Either way a crop is a pure function of the config, so training sees the same bits whatever the number of
workers. `stream(batches)` yields the batches in order while the workers already synthesise the next ones.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from train.config import DataConfig
from train.data import synthetic_sets
from train.data.ict import load_ict_model


class StoredCrops:
    """A row subset of a set's stored (memory-mapped) crops, read a batch at a time."""

    def __init__(self, array: np.ndarray, rows: np.ndarray):
        self.array, self.rows = array, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> np.ndarray:
        return np.asarray(self.array[self.rows[index]])

    def stream(self, batches):
        for index in batches:
            yield self[index]

    def close(self) -> None:
        pass


class SynthesisedCrops:
    """Crops of a set that stores none, synthesised on demand from its stored meshes (the same function and seed
    that would have stored them). rows: flat (identity x expression) indices of a FaceScape-like set, or frame
    indices of a BP4D-like one. workers 0 synthesises in this process."""

    def __init__(self, stored, cfg: DataConfig, rows: np.ndarray, workers: int | None = None):
        built = getattr(stored, "meta", {}).get("build_key")
        if built is None:
            raise ValueError(f"{getattr(stored, 'path', stored)}: holds no texture crops and is not a built synthetic "
                             f"set, so none can be synthesised for it")
        ict = load_ict_model()
        key = json.loads(json.dumps(synthetic_sets._build_key(stored.kind, cfg, ict)))
        if built != key:
            raise ValueError(f"{stored.path}: built from another config or generator version than "
                             f"{cfg.config_name!r}; textures synthesised now would not belong to its meshes "
                             f"(rebuild it with `python -m train data build --config {cfg.config_name}`)")
        self.kind, self.cfg, self.ict, self.path = stored.kind, cfg, ict, stored.path
        self.rows = np.asarray(rows)
        self.workers = default_workers() if workers is None else workers
        self._pool = None
        self._local = None  # (source, vertices) when synthesising in this process

    def __len__(self) -> int:
        return len(self.rows)

    def _executor(self):
        if self._pool is None:
            # fork where there is one: workers inherit the loaded ICT model; they use numpy and scipy only
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(method),
                                             initializer=_init_worker, initargs=(self.kind, self.cfg, self.ict,
                                                                                 str(self.path)))
        return self._pool

    def __getitem__(self, index) -> np.ndarray:
        return next(self.stream([index]))

    def stream(self, batches, ahead: int | None = None):
        """Yield each batch of crops (B, R, R, 3) uint8 in order, keeping `ahead` batches in the workers."""
        rows = (np.atleast_1d(self.rows[np.asarray(index)]) for index in batches)
        if self.workers <= 0:
            if self._local is None:
                self._local = (synthetic_sets.synthetic_set(self.kind, self.cfg, self.ict),
                               _open_vertices(self.kind, str(self.path)))
            for batch in rows:
                yield np.stack([_crop_from(*self._local, int(r)) for r in batch])
            return
        pool = self._executor()
        pending: deque = deque()
        ahead = ahead or max(2, self.workers)
        for batch in rows:
            pending.append([pool.submit(_crop, int(r)) for r in batch])
            if len(pending) > ahead:
                yield np.stack([f.result() for f in pending.popleft()])
        while pending:
            yield np.stack([f.result() for f in pending.popleft()])

    def close(self) -> None:
        if getattr(self, "_pool", None) is not None:  # also from __del__ after a failed __init__
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __del__(self):
        self.close()


def default_workers() -> int:
    """One synthesis process per core but the one that trains."""
    return max(1, (os.cpu_count() or 1) - 1)


def identity_rows(identities: np.ndarray, num_expressions: int) -> np.ndarray:
    """The flat (identity x expression) rows of every expression of these identities of a FaceScape-like set."""
    return (np.asarray(identities)[:, None] * num_expressions + np.arange(num_expressions)).reshape(-1)


def crop_rows(stored, cfg: DataConfig, rows: np.ndarray, workers: int | None = None):
    """The crops at `rows` (flat identity x expression indices, or frames): stored, else synthesised."""
    if stored.textures is not None:
        flat = stored.textures.reshape(-1, *stored.textures.shape[-3:])
        return StoredCrops(flat, rows)
    return SynthesisedCrops(stored, cfg, rows, workers)


def _open_vertices(kind: str, path: str) -> np.ndarray:
    vertices = np.load(os.path.join(path, "vertices.npy"), mmap_mode="r")
    return vertices.reshape(-1, *vertices.shape[2:]) if kind == "facescape" else vertices


_vertices = None


def _init_worker(kind: str, cfg: DataConfig, ict, path: str) -> None:
    global _vertices
    synthetic_sets._init_worker(kind, cfg, ict)  # one BLAS thread per worker, as when building sets
    _vertices = _open_vertices(kind, path)


def _crop(row: int) -> np.ndarray:
    return _crop_from(synthetic_sets._worker_source, _vertices, row)


def _crop_from(source, vertices: np.ndarray, row: int) -> np.ndarray:
    mesh = np.asarray(vertices[row])
    if isinstance(source, synthetic_sets.SyntheticFaceScape):
        identity, expression = divmod(row, len(source.expression_names))
        return source.texture(identity, expression, mesh=mesh, window="crop")
    return source.texture(row, mesh=mesh, window="crop")
