"""BP4D-style registered meshes with per-frame FACS action-unit intensities, as an `ActionUnitFrameSource`.

BP4D-Spontaneous itself ships, per subject (F001..F023, M001..M018) and task (T1..T8), 2D video, 3D models and
frame-level FACS AU labels (occurrence 0/1, intensity 0-5 for some AUs, 9 = not coded). Its raw 3D models are not
in one topology, so this layout holds meshes that were registered to one template first. It is ours, kept simple::

    {root}/au_labels.csv                          the label table (below)
    {root}/{subject}/{task}/{frame:04d}.obj       registered mesh of that frame (vertices, UVs, polygons)
    {root}/{subject}/{task}/{frame:04d}.mtl       optional material; `map_Kd` names the texture
    {root}/{subject}/{task}/{frame:04d}.png       optional UV texture (or .jpg/.jpeg), found as for FaceScape

`{frame:04d}` is the frame number zero-padded to at least 4 digits (7 -> 0007.obj, 12345 -> 12345.obj).

au_labels.csv (UTF-8, a byte-order mark is accepted; comma separated; cells are stripped of surrounding spaces;
blank lines are ignored):

| column | content |
|---|---|
| subject | folder name of the subject, `[A-Za-z0-9][A-Za-z0-9_.-]*`, e.g. F001 |
| task | folder name of the task, same characters, e.g. T1 |
| frame | non-negative decimal integer, e.g. 42 (file 0042.obj) |
| AU<n> ... | one column per action unit named `AU` + decimal number (AU1, AU12, ...); at least one, distinct |
|           | each cell: an integer literal 0..5 (0 = absent, 1..5 = FACS intensity A..E) |

Example::

    subject,task,frame,AU1,AU2,AU12
    F001,T1,0,0,0,3
    F001,T1,1,1,0,4

Rules (all checked when the folder is opened; one LayoutError lists every problem, naming the table line (header =
line 1), column and value, or the file):
* the header is exactly `subject,task,frame` followed by the AU columns;
* BP4D's intensity code 9 ("unknown / not coded") is rejected, not guessed: drop those frames or decide a value
  before converting; other values outside 0..5, empty cells and non-integers (2.5, 2.0, x) are rejected too;
* each (subject, task, frame) appears once; rows keep their order, which is the source's frame order;
* every row has its mesh file, and every `{root}/*/*/*.obj` has a row;
* every mesh shares the first row's mesh topology (vertex count, polygon sizes, vertex and UV indices, UVs),
  vertices are finite (checked on reading and by `validate()`).
Units: meshes are in millimetres like FaceScape by default (`units_to_cm=0.1`); our exporter writes millimetres.
"""
from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.atomic import write_text_atomic
from train.data.layout import (LayoutError, MeshFolder, check_texture_format, export_folder, find_texture,
                               positive_scale, problems_error, read_checked_vertices, read_mesh_file,
                               read_texture_image, template_from_obj, write_textured_mesh)
from train.data.sources import ActionUnitFrameSource

AU_TABLE = "au_labels.csv"
KEY_COLUMNS = ("subject", "task", "frame")
AU_COLUMN = re.compile(r"^AU\d+$")
FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_INTENSITY = 5
BP4D_UNKNOWN = 9
_INTEGRAL_TOLERANCE = 1e-4  # float32 intensities such as 2.9999998 still count as the integer 3


def frame_file_name(frame: int) -> str:
    return f"{int(frame):04d}.obj"


@dataclass(frozen=True)
class AUTable:
    au_names: tuple[str, ...]
    subjects: tuple[str, ...]
    tasks: tuple[str, ...]
    frames: np.ndarray  # (N,) int64
    intensities: np.ndarray  # (N, A) float32
    lines: np.ndarray  # (N,) int64, line of each row in the file


def _check_header(header: list[str], path: Path) -> tuple[str, ...]:
    if tuple(header[:3]) != KEY_COLUMNS:
        raise LayoutError(f"{path}: bad header {','.join(header)!r}: must start with 'subject,task,frame'")
    aus = header[3:]
    bad = [a for a in aus if not AU_COLUMN.match(a)]
    if not aus or bad:
        raise LayoutError(f"{path}: bad header: after subject,task,frame every column must be named AU<number> "
                          f"(e.g. AU12) and there must be at least one; got {', '.join(map(repr, bad)) or 'none'}")
    repeated = sorted({a for a in aus if aus.count(a) > 1})
    if repeated:
        raise LayoutError(f"{path}: bad header: AU columns repeated: {', '.join(repeated)}")
    return tuple(aus)


def _intensity_problems(cells: np.ndarray, lines: np.ndarray, au_names: tuple[str, ...], path: Path
                        ) -> tuple[np.ndarray, list[str]]:
    """Parse the (N, A) AU cells at once; describe every cell that is not an integer 0..5."""
    is_int = np.char.isdecimal(cells)
    too_long = is_int & (np.char.str_len(cells) > 6)  # would overflow the parse; surely out of range anyway
    values = np.where(is_int & ~too_long, cells, "0").astype(np.int64)
    values[too_long] = MAX_INTENSITY + 1
    problems = []
    for r, a in np.argwhere(~is_int | (values > MAX_INTENSITY)):
        value = cells[r, a]
        where = f"{path}: line {lines[r]}, column {au_names[a]}: value {value!r}"
        if not is_int[r, a]:
            problems.append(f"{where} is not an integer intensity 0..{MAX_INTENSITY}")
        elif values[r, a] == BP4D_UNKNOWN:
            problems.append(f"{where} is BP4D's 'unknown' code, which this layout does not accept; drop the frame "
                            f"or decide its intensity (0..{MAX_INTENSITY}) before converting")
        else:
            problems.append(f"{where} is out of range 0..{MAX_INTENSITY}")
    return values, problems


def read_au_table(path: Path) -> tuple[AUTable, list[str]]:
    """The table's rows that parse, and the problems of every row that does not (header problems raise)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LayoutError(f"{path}: AU label table is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LayoutError(f"{path}: cannot read AU label table ({e})") from e
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise LayoutError(f"{path}: AU label table is empty (needs a header 'subject,task,frame,AU...')")
    au_names = _check_header([c.strip() for c in header], path)
    width = 3 + len(au_names)
    problems: list[str] = []
    keys, cells, lines = [], [], []
    first_line: dict[tuple[str, str, int], int] = {}
    for row in reader:
        line = reader.line_num
        row = [c.strip() for c in row]
        if not any(row):
            continue
        if len(row) != width:
            problems.append(f"{path}: line {line}: {len(row)} cells, the header has {width}")
            continue
        subject, task, frame = row[:3]
        bad = [f"column {col}: value {val!r} is not a folder name ({FOLDER_NAME.pattern})"
               for col, val in (("subject", subject), ("task", task)) if not FOLDER_NAME.match(val)]
        if not frame.isdecimal():
            bad.append(f"column frame: value {frame!r} is not a non-negative integer")
        if bad:
            problems.extend(f"{path}: line {line}, {b}" for b in bad)
            continue
        key = (subject, task, int(frame))
        if key in first_line:
            problems.append(f"{path}: line {line}: duplicate row for subject {subject}, task {task}, frame "
                            f"{int(frame)} (first at line {first_line[key]})")
            continue
        first_line[key] = line
        keys.append(key)
        cells.append(row[3:])
        lines.append(line)
    lines_arr = np.asarray(lines, np.int64)
    values, cell_problems = _intensity_problems(np.asarray(cells, dtype=str).reshape(len(cells), len(au_names)),
                                                lines_arr, au_names, path)
    problems.extend(cell_problems)
    if not keys and not problems:
        problems.append(f"{path}: AU label table has a header but no rows")
    table = AUTable(au_names=au_names, subjects=tuple(k[0] for k in keys), tasks=tuple(k[1] for k in keys),
                    frames=np.asarray([k[2] for k in keys], np.int64), intensities=values.astype(np.float32),
                    lines=lines_arr)
    return table, problems


class BP4DFolder(MeshFolder):
    """A BP4D-style folder (see the module docstring), meshes read lazily; implements ActionUnitFrameSource.

    `load_all()` gives (N, V, 3) float32 cm; `validate()` reads everything and lists every problem.
    """

    layout_name = "BP4D"

    def __init__(self, root: str | os.PathLike, units_to_cm: float = 0.1):
        self.root = Path(root)
        self.units_to_cm = positive_scale(units_to_cm, "units_to_cm")
        if not self.root.is_dir():
            raise LayoutError(f"{self.root}: BP4D-style root folder does not exist")
        self.table_path = self.root / AU_TABLE
        table, problems = read_au_table(self.table_path)
        self.au_names = table.au_names
        self.frame_subjects = table.subjects
        self.frame_tasks = table.tasks
        self.frame_numbers = table.frames
        self.au_intensities = table.intensities
        self._lines = table.lines
        problems.extend(self._file_problems())
        if problems:
            raise problems_error(self.root, problems)
        self.first_mesh_path = self.mesh_path(0)
        self.template = template_from_obj(read_mesh_file(self.first_mesh_path), self.first_mesh_path)

    def _file_problems(self) -> list[str]:
        expected = [self.mesh_path(f) for f in range(len(self))]
        problems = [f"{self.table_path}: line {line}: mesh file {path} is missing"
                    for line, path in zip(self._lines.tolist(), expected) if not path.is_file()]
        on_disk = set(self.root.glob("*/*/*.obj"))
        problems.extend(f"{path}: mesh has no row in {self.table_path}"
                        for path in sorted(on_disk.difference(expected)))
        return problems

    def __len__(self) -> int:
        return len(self.frame_numbers)

    @property
    def index_shape(self) -> tuple[int]:
        return (len(self),)

    def mesh_path(self, frame: int) -> Path:
        return self.root / self.frame_subjects[frame] / self.frame_tasks[frame] / frame_file_name(
            self.frame_numbers[frame])

    def texture_path(self, frame: int) -> Path | None:
        stem = self.mesh_path(frame).with_suffix("")
        return find_texture(stem.with_suffix(".mtl"), stem)

    def mesh(self, frame: int) -> np.ndarray:
        """(V, 3) float32 centimetres."""
        return read_checked_vertices(self.mesh_path(frame), self.template, self.first_mesh_path, self.units_to_cm)

    def texture(self, frame: int) -> np.ndarray | None:
        path = self.texture_path(frame)
        return None if path is None else read_texture_image(path)


def _export_intensities(source: ActionUnitFrameSource, round_intensities: bool) -> np.ndarray:
    values = np.asarray(source.au_intensities, np.float64)
    n, a = len(source.frame_numbers), len(source.au_names)
    if values.shape != (n, a):
        raise ValueError(f"au_intensities has shape {values.shape}, expected ({n}, {a}) (frames, AUs)")
    bad = np.argwhere(~np.isfinite(values) | (values < 0) | (values > MAX_INTENSITY))
    if len(bad):
        f, k = bad[0]
        raise ValueError(f"au_intensities: {len(bad)} values outside 0..{MAX_INTENSITY}, first frame {f} "
                         f"{source.au_names[k]} = {values[f, k]}")
    rounded = np.rint(values)
    off = np.argwhere(np.abs(values - rounded) > _INTEGRAL_TOLERANCE)
    if len(off) and not round_intensities:
        f, k = off[0]
        raise ValueError(f"au_intensities: {len(off)} values are not integers (first frame {f} {source.au_names[k]} "
                         f"= {values[f, k]}); the table holds integer intensities: pass round_intensities=True "
                         "to round them")
    return rounded.astype(np.int64)


def _check_export_keys(source: ActionUnitFrameSource) -> None:
    names = [str(a) for a in source.au_names]
    bad = [a for a in names if not AU_COLUMN.match(a)]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"au_names must be distinct names AU<number>, got {names}")
    n = len(source.frame_numbers)
    if n == 0:
        raise ValueError("the source has no frames to export")
    if len(source.frame_subjects) != n or len(source.frame_tasks) != n:
        raise ValueError(f"frame_subjects ({len(source.frame_subjects)}), frame_tasks ({len(source.frame_tasks)}) "
                         f"and frame_numbers ({n}) must have one entry per frame")
    for what, values in (("subject", source.frame_subjects), ("task", source.frame_tasks)):
        bad = sorted({str(v) for v in values if not FOLDER_NAME.match(str(v))})
        if bad:
            raise ValueError(f"{what} names must be folder names ({FOLDER_NAME.pattern}): {bad}")
    frames = np.asarray(source.frame_numbers)
    if frames.dtype.kind not in "iu" or (frames < 0).any():
        raise ValueError(f"frame_numbers must be non-negative integers, got dtype {frames.dtype}, min {frames.min()}")
    keys = Counter(zip(map(str, source.frame_subjects), map(str, source.frame_tasks), frames.tolist()))
    repeated = [k for k, count in keys.items() if count > 1]
    if repeated:
        raise ValueError(f"{len(repeated)} (subject, task, frame) keys repeat, e.g. {repeated[0]}")


def export_bp4d_layout(source: ActionUnitFrameSource, root: str | os.PathLike, units_from_cm: float = 10.0,
                       texture_format: str = "png", round_intensities: bool = False, progress: bool = True,
                       overwrite: bool = False) -> Path:
    """Write every frame's mesh (with mtl and texture when it has one) and au_labels.csv, in source frame order.

    Intensities must be integers 0..5 (within 1e-4) unless `round_intensities` (nearest, ties to even).
    Everything is checked before the first file is written; the table is written last. The folder appears whole
    or not at all (written beside `root` under a hidden name, then renamed); a non-empty `root` is refused, unless
    `overwrite` and it is a previous export (holds au_labels.csv), which is then replaced whole. Returns `root`.
    """
    root = Path(root)
    units_from_cm = positive_scale(units_from_cm, "units_from_cm")
    check_texture_format(texture_format)
    _check_export_keys(source)
    intensities = _export_intensities(source, round_intensities)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow([*KEY_COLUMNS, *map(str, source.au_names)])
    with export_folder(root, overwrite, AU_TABLE) as work:
        for f in tqdm(range(len(source.frame_numbers)), desc="export BP4D", unit="frame", disable=not progress):
            subject, task = str(source.frame_subjects[f]), str(source.frame_tasks[f])
            number = int(source.frame_numbers[f])
            obj_path = work / subject / task / frame_file_name(number)
            write_textured_mesh(obj_path, obj_path.with_suffix(".mtl"), source.mesh(f), source.template,
                                source.texture(f), units_from_cm, texture_format,
                                f"frame {f} ({subject}/{task}/{number})")
            writer.writerow([subject, task, number, *intensities[f].tolist()])
        write_text_atomic(work / AU_TABLE, table.getvalue())
    return root
