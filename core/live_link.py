"""Read a Live Link Face take (the iPhone app's CSV) as ARKit weights over time; no Blender, numpy only.

The app writes one row per captured frame:

    Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,...,TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,...
    20:15:32:10.123,61,0.0412,...

- Timecode is HH:MM:SS:FF.fff: hours, minutes, seconds, the frame FF at the app's frame rate and a fraction of a frame.
  The rate is not in the file: the take's own is the smallest common rate above every FF it holds (60 for the app's
  usual 0..59; a take shorter than a second: the app's default, 60), or state it.
- The 52 blendshape columns are ARKit's names with a capital first letter; they are matched to ARKit's names without
  regard to case. Head and eye rotations (HeadYaw ... RightEyeRoll) are kept as they are recorded.
- Some versions of the app write the mouth's and the jaw's Left/Right columns the wrong way round: swap_left_right
  swaps every mouth* and jaw* ...Left column with its ...Right one.
- first_frame_neutral subtracts the first row's weights (a take that starts from a face at rest whose tracking
  reads above zero).
- A take recorded across midnight goes on past 24:00:00 (the clock restarting at 00:00:00 is a new day).
Weights outside 0..1 are clamped and counted (as recorded, before any neutral is subtracted); other columns are listed as unknown. Anything that is not a take (no
Timecode column, no ARKit column, a value that is not a number, no rows) raises TakeError naming the file and the
first bad line.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .arkit_rig import ARKIT_NAMES

TIMECODE = "timecode"
IGNORED = ("blendshapecount",)  # how many blendshapes the row has: nothing to animate
ROTATIONS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw",
             "RightEyePitch", "RightEyeRoll")
COMMON_RATES = (24, 25, 30, 48, 50, 60, 120)
_TIMECODE = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2}):(\d+)(?:\.(\d+))?$")  # no drop-frame ';': the app counts whole frames
DAY = 24 * 3600


class TakeError(ValueError):
    pass


@dataclass
class Take:
    path: Path
    names: tuple[str, ...]  # ARKit names (Apple's spelling) of the weight columns, in the file's order
    weights: np.ndarray  # (N, K) float32 in 0..1
    seconds: np.ndarray  # (N,) float64 from the first row
    rate: float  # the app's frame rate the timecodes count in
    rotations: dict[str, np.ndarray] = field(default_factory=dict)  # column -> (N,) float32, as recorded
    unknown_columns: tuple[str, ...] = ()
    clamped: int = 0  # weights that were outside 0..1
    swapped: bool = False
    first_frame_neutral: bool = False

    def columns(self, names) -> np.ndarray:
        """(N, len(names)) the weights of these ARKit names, in that order."""
        return self.weights[:, [self.names.index(n) for n in names]]

    def rotation_columns(self, names) -> np.ndarray:
        """(N, len(names)) the rotation columns of these names, in that order."""
        return np.stack([self.rotations[n] for n in names], axis=1)

    def report(self) -> str:
        """One line for the user."""
        parts = [f"{len(self.seconds)} frames, {self.seconds[-1]:.2f} s at {self.rate:g} fps",
                 f"{len(self.names)} ARKit weights"]
        if self.rotations:
            parts.append(f"{len(self.rotations)} rotations")
        if self.clamped:
            parts.append(f"{self.clamped} values clamped to 0..1")
        if self.unknown_columns:
            parts.append("unknown columns: " + ", ".join(self.unknown_columns))
        if self.swapped:
            parts.append("mouth and jaw Left/Right swapped")
        return f"{self.path.name}: " + "; ".join(parts)


def _arkit_by_lower() -> dict[str, str]:
    return {n.lower(): n for n in ARKIT_NAMES}


def swap_partner(name: str) -> str | None:
    """A mouth* or jaw* ARKit name's other side (mouthSmileLeft -> mouthSmileRight), else None."""
    if not name.startswith(("mouth", "jaw")):
        return None
    for a, b in (("Left", "Right"), ("Right", "Left")):
        if name.endswith(a) and name[:-len(a)] + b in ARKIT_NAMES:
            return name[:-len(a)] + b
    return None


def parse_timecode(text: str) -> tuple[int, float] | None:
    """(whole seconds, frames including the fraction), or None when text is not HH:MM:SS:FF(.fff)."""
    m = _TIMECODE.match(text.strip())
    if not m:
        return None
    hours, minutes, secs, frame, fraction = m.groups()
    if int(minutes) > 59 or int(secs) > 59:
        return None
    return int(hours) * 3600 + int(minutes) * 60 + int(secs), int(frame) + (float(f"0.{fraction}") if fraction
                                                                              else 0.0)


APP_DEFAULT_RATE = 60.0


def take_rate(whole_seconds: np.ndarray, frames: np.ndarray) -> float:
    """The take's own frame rate: where its timecodes cross a second, the smallest common rate above every frame
    number they hold (the frames then ran up to the rate); a take within one second shows no such bound, and is
    taken at the app's default rate (60) unless its frame numbers need more."""
    top = int(np.floor(frames.max())) if len(frames) else 0
    if len(np.unique(whole_seconds)) < 2 and top < APP_DEFAULT_RATE:
        return APP_DEFAULT_RATE
    return float(next((r for r in COMMON_RATES if r > top), top + 1))


def read_take(path: str | Path, rate: float | None = None, swap_left_right: bool = False,
              first_frame_neutral: bool = False) -> Take:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TakeError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TakeError(f"{path}: cannot be read as a text file ({e})") from None
    reader = csv.reader(io.StringIO(text))
    rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]  # line_num: the file's line
    if not rows:
        raise TakeError(f"{path}: empty; a Live Link Face take starts with a header line 'Timecode,BlendShapeCount,"
                        f"EyeBlinkLeft,...'")
    header_line, header = rows[0]
    header = [c.strip() for c in header]
    lower = [c.lower() for c in header]
    if TIMECODE not in lower:
        raise TakeError(f"{path}: line {header_line}: no Timecode column; not a Live Link Face take (its header "
                        f"starts 'Timecode,BlendShapeCount,EyeBlinkLeft,...')")
    arkit = _arkit_by_lower()
    rotation = {r.lower(): r for r in ROTATIONS}
    weight_cols, rotation_cols, unknown = [], [], []
    for col, name in enumerate(lower):
        if name == TIMECODE or name in IGNORED:
            continue
        if name in arkit:
            weight_cols.append((col, arkit[name]))
        elif name in rotation:
            rotation_cols.append((col, rotation[name]))
        else:
            unknown.append(header[col])
    if not weight_cols:
        raise TakeError(f"{path}: line {header_line}: no ARKit blendshape column (EyeBlinkLeft, JawOpen, ...); not a "
                        f"Live Link Face take")
    repeated = sorted({n for _, n in weight_cols if sum(1 for _, m in weight_cols if m == n) > 1})
    if repeated:
        raise TakeError(f"{path}: line {header_line}: columns repeated (names compared without case): {repeated}")
    body = rows[1:]
    if not body:
        raise TakeError(f"{path}: a header and no frames")
    time_col = lower.index(TIMECODE)
    numeric = [c for c, _ in weight_cols] + [c for c, _ in rotation_cols]
    whole, frames = np.empty(len(body)), np.empty(len(body))
    values = np.empty((len(body), len(numeric)))
    for i, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise TakeError(f"{path}: line {line}: {len(row)} cells, the header has {len(header)}")
        parsed = parse_timecode(row[time_col])
        if parsed is None:
            raise TakeError(f"{path}: line {line}: Timecode {row[time_col]!r} is not HH:MM:SS:FF.fff")
        whole[i], frames[i] = parsed
        try:
            values[i] = [float(row[c]) for c in numeric]
        except ValueError:
            bad = next(c for c in numeric if not _is_number(row[c]))
            raise TakeError(f"{path}: line {line}: column {header[bad]}: {row[bad]!r} is not a number") from None
    if not np.isfinite(values).all():
        i, j = np.argwhere(~np.isfinite(values))[0]
        raise TakeError(f"{path}: line {body[i][0]}: column {header[numeric[j]]}: {body[i][1][numeric[j]]!r} is not "
                        f"a finite number")
    if rate is None:
        rate = take_rate(whole, frames)
    elif isinstance(rate, bool) or not float(rate).is_integer() or not rate > 0:
        raise TakeError(f"{path}: frame rate {rate!r}: expected a whole number of frames per second (the app's "
                        f"timecodes count whole frames: 24, 25, 30, 60, ...)")
    elif frames.max() >= rate:
        first = int(np.argmax(frames >= rate))
        raise TakeError(f"{path}: line {body[first][0]}: frame {frames[first]:g} of the timecode does not exist at "
                        f"{rate:g} fps")
    seconds = whole + frames / rate
    # a take recorded across midnight: the clock starts again at 00:00:00
    seconds += DAY * np.cumsum(np.concatenate([[0], np.diff(seconds) < -DAY / 2]))
    backwards = np.flatnonzero(np.diff(seconds) < 0)
    if len(backwards):
        raise TakeError(f"{path}: line {body[backwards[0] + 1][0]}: the timecode goes back in time")
    seconds -= seconds[0]
    names = [n for _, n in weight_cols]
    weights = values[:, :len(weight_cols)]
    if swap_left_right:
        names = [swap_partner(n) or n for n in names]
    clamped = int(((weights < 0) | (weights > 1)).sum())  # as recorded; the neutral's subtraction is asked for
    if first_frame_neutral:
        weights = np.clip(weights, 0, 1) - np.clip(weights[:1], 0, 1)
    rotations = {n: values[:, len(weight_cols) + k].astype(np.float32) for k, (_, n) in enumerate(rotation_cols)}
    return Take(path, tuple(names), np.clip(weights, 0, 1).astype(np.float32), seconds, float(rate), rotations,
                tuple(unknown), clamped, swap_left_right, first_frame_neutral)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def timecode(seconds: float, rate: int) -> str:
    """seconds since midnight as the app writes them: HH:MM:SS:FF.fff at an integer `rate`."""
    ticks = round(seconds * rate * 1000)  # thousandths of a frame
    frame, fraction = divmod(ticks, 1000)
    whole, ff = divmod(frame, rate)
    return f"{whole // 3600 % 24:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{ff:02d}.{fraction:03d}"


def format_take(names, weights: np.ndarray, rate: int = 60, start: float = 12 * 3600.0,
                rotations: dict[str, np.ndarray] | None = None) -> str:
    """A take as the app writes it (capitalised names, Timecode and BlendShapeCount first, rotations last): what
    the tests and the benchmark read back."""
    rotations = rotations or {}
    header = ["Timecode", "BlendShapeCount", *(n[0].upper() + n[1:] for n in names), *rotations]
    lines = [",".join(header)]
    for i, row in enumerate(np.asarray(weights)):
        cells = [timecode(start + i / rate, rate), str(len(names)), *(f"{v:.6g}" for v in row),
                 *(f"{r[i]:.6g}" for r in rotations.values())]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def scene_frames(take: Take, fps: float, frame_start: int) -> np.ndarray:
    """(N,) float64 scene frames of the take's rows: its seconds at the scene's frame rate, from frame_start."""
    if not fps > 0:
        raise ValueError(f"scene frame rate {fps!r}: expected a positive number")
    return frame_start + take.seconds * fps


def keyframe_points(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(2 N,) float32 (frame, value) pairs, as F-curve keyframe points' foreach_set('co') takes them."""
    return np.stack([frames, values], axis=1).astype(np.float32).ravel()
