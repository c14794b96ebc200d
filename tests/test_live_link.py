"""Live Link Face takes read as ARKit weights over time (core.live_link), with the app's quirks and broken files."""
import numpy as np
import pytest

from core.arkit_rig import ARKIT_NAMES
from core.live_link import TakeError, format_take, read_take, scene_frames, swap_partner, timecode


def write(tmp_path, text, name="take.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_take_reads_back_with_its_times_columns_and_quirks(tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.uniform(0, 1, (90, len(ARKIT_NAMES)))
    weights[10, ARKIT_NAMES.index("jawOpen")] = 1.25
    weights[11, ARKIT_NAMES.index("cheekPuff")] = -0.5
    yaw = rng.uniform(-1, 1, 90)
    text = format_take(ARKIT_NAMES, weights, 30, start=23 * 3600 + 59 * 60 + 59.5, rotations={"HeadYaw": yaw})
    assert text.splitlines()[0].startswith("Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft")
    take = read_take(write(tmp_path, text))
    assert take.names == ARKIT_NAMES and take.rate == 30  # the app's capitalised names, matched without case
    assert text.splitlines()[20].startswith("00:00:00:")  # the clock passed midnight ...
    np.testing.assert_allclose(take.seconds, np.arange(90) / 30, atol=1e-6)  # ... and the take goes on
    np.testing.assert_allclose(take.weights, np.clip(weights, 0, 1), atol=1e-5)
    assert take.clamped == 2 and "2 values clamped" in take.report()
    np.testing.assert_allclose(take.rotations["HeadYaw"], yaw, atol=1e-5)
    np.testing.assert_allclose(scene_frames(take, 24, 1)[[0, 30]], [1, 25])

    swapped = read_take(write(tmp_path, text), swap_left_right=True)
    for name in ("mouthLeft", "jawRight", "mouthSmileLeft", "mouthPressRight"):
        np.testing.assert_array_equal(swapped.columns([name]), take.columns([swap_partner(name)]))
    np.testing.assert_array_equal(swapped.columns(["eyeBlinkLeft"]), take.columns(["eyeBlinkLeft"]))  # not mouth
    neutral = read_take(write(tmp_path, text), first_frame_neutral=True)
    clipped = np.clip(weights, 0, 1)
    np.testing.assert_allclose(neutral.weights, np.clip(clipped - clipped[:1], 0, 1), atol=1e-5)
    assert not neutral.weights[0].any() and neutral.clamped == 2  # the file's own out-of-range values, no more

    at_60 = read_take(write(tmp_path, text), rate=60)  # a stated rate: the same frame numbers mean other times
    np.testing.assert_allclose(at_60.seconds[:3], [0, 1 / 60, 2 / 60], atol=1e-6)


def test_unknown_columns_are_listed_and_a_rate_too_low_for_the_timecodes_refused(tmp_path):
    text = "Timecode,BlendShapeCount,JawOpen,Foo,HeadRoll\n12:00:00:58.000,1,0.5,3,0.1\n12:00:00:59.500,1,0.6,3,0.2\n"
    take = read_take(write(tmp_path, text))  # within one second: the app's default rate
    assert take.names == ("jawOpen",) and take.unknown_columns == ("Foo",) and take.rate == 60
    short = "Timecode,JawOpen\n12:00:00:01.000,0.5\n12:00:00:02.000,0.6\n"
    assert read_take(write(tmp_path, short)).rate == 60
    crossing = "Timecode,JawOpen\n12:00:00:28.000,0.5\n12:00:00:29.000,0.6\n12:00:01:00.000,0.6\n"
    assert read_take(write(tmp_path, crossing)).rate == 30
    assert "unknown columns: Foo" in take.report() and list(take.rotations) == ["HeadRoll"]
    with pytest.raises(TakeError, match="line 2: frame 58.* does not exist at 30 fps"):
        read_take(write(tmp_path, text), rate=30)
    with pytest.raises(TakeError, match="take.csv: frame rate 29.97: expected a whole number"):
        read_take(write(tmp_path, text), rate=29.97)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("Time,JawOpen\n0,1\n", "line 1: no Timecode column"),
    ("Timecode,Foo\n12:00:00:00.000,1\n", "line 1: no ARKit blendshape column"),
    ("Timecode,JawOpen\n", "a header and no frames"),
    ("Timecode,JawOpen\n12:00:00:00.000,0.1\n12:00:00:01.000,x\n", "line 3: column JawOpen: 'x' is not a number"),
    ("Timecode,JawOpen\n12:00:00:00.000,0.1\n12:00:00:01.000,nan\n", "line 3: column JawOpen: 'nan' is not a finite"),
    ("Timecode,JawOpen\n12:00:00:00.000,0.1\n12-00-00,0.2\n", "line 3: Timecode '12-00-00' is not HH:MM:SS:FF"),
    ("Timecode,JawOpen\n12:00:01:00.000,0.1\n12:00:00:00.000,0.2\n", "line 3: the timecode goes back in time"),
    ("Timecode,JawOpen,jawopen\n12:00:00:00.000,0.1,0.2\n", "columns repeated"),
    ("Timecode,JawOpen\n12:00:00;00.000,0.1\n", "line 2: Timecode '12:00:00;00.000' is not HH:MM:SS:FF"),
    ("Timecode,JawOpen\n\n\n12:00:00:00.000,zz\n", "line 4: column JawOpen: 'zz' is not a number"),
    ("Timecode,JawOpen\n12:00:00:00.000,0.1,9\n", "line 2: 3 cells, the header has 2"),
])
def test_what_is_not_a_take_is_refused_naming_the_file_and_line(tmp_path, text, message):
    path = write(tmp_path, text, "broken.csv")
    with pytest.raises(TakeError, match=message) as e:
        read_take(path)
    assert "broken.csv" in str(e.value)


def test_timecodes_round_trip():
    for seconds in (0.0, 1 / 60, 59.999, 3600 * 13 + 0.5):
        assert abs(read_seconds(timecode(seconds, 60)) - seconds) < 1e-6


def read_seconds(code: str) -> float:
    from core.live_link import parse_timecode
    whole, frames = parse_timecode(code)
    return whole + frames / 60
