"""A clone needs nothing beside it: the checkout copied alone into an empty folder builds a data set."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_copy_of_the_checkout_with_nothing_beside_it_builds_a_set(tmp_path):
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout
    alone = tmp_path / "nowhere" / "facecam"
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (alone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, alone / name)
    assert not (alone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != "FACECAM_ICT_NPZ"}
    env["PYTHONPATH"] = str(alone)
    code = ("import json, sys; from tests.conftest import tiny_config_dict; from train.config import data_config; "
            "from train.data.ict import ict_npz_path; from train.data.synthetic_sets import StoredSet, build_set; "
            "cfg = tiny_config_dict(); cfg['data']['facescape']['num_identities'] = 3; "
            "s = StoredSet(build_set('facescape', data_config(cfg), 'set', progress=False)); "
            "print(ict_npz_path().resolve(), s.vertices.shape)")
    out = subprocess.run([sys.executable, "-c", code], cwd=alone, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    path, shape = out.stdout.strip().split(" ", 1)
    assert Path(path).is_relative_to(alone.resolve()), path
    assert shape == "(3, 20, 26719, 3)"
