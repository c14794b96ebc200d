"""numpy and torch generate the same faces from the same files; generation needs neither torch, safetensors, pillow
nor huggingface_hub; a broken torch falls back to numpy and says so."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from bench.random_model import config_networks, random_model
from core.face_model import FaceModel, ModelFormatError

ROOT = Path(__file__).resolve().parents[1]
MM_PER_CM = 10.0
# a meta-path hook that makes these packages absent, as in a stock Blender's Python
BLOCK = ("import sys\n"
         "class _Absent:\n"
         "    def find_spec(self, name, path=None, target=None):\n"
         "        if name.split('.')[0] in {'torch', 'safetensors', 'PIL', 'huggingface_hub', 'scipy'}:\n"
         "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
         "sys.meta_path.insert(0, _Absent())\n")


def assert_same_faces(a: list, b: list, what: str) -> None:
    for fa, fb in zip(a, b, strict=True):
        assert np.abs(fa.vertices - fb.vertices).max() * MM_PER_CM < 1e-3, what  # 1 micrometre
        assert (fa.texture is None) == (fb.texture is None), what
        if fa.texture is not None:
            assert np.abs(fa.texture.astype(int) - fb.texture).max() <= 1, what


def both(folder) -> tuple[FaceModel, FaceModel]:
    numpy_model, torch_model = FaceModel(folder, backend="numpy"), FaceModel(folder, backend="torch")
    assert (numpy_model.backend.name, torch_model.backend.name) == ("numpy", "torch")
    return numpy_model, torch_model


def compare_everything(folder) -> None:
    """Every expression at intensities 0, 1 and 2.5 in both intensity modes, a mix, a sweep."""
    a, b = both(folder)
    for mode in ("calibrated", "paper"):
        a.intensity_mode = b.intensity_mode = mode
        for alpha in (0.0, 1.0, 2.5):
            assert_same_faces(a.expression_set(5, a.expression_names, alpha, 2, texture=True),
                              b.expression_set(5, b.expression_names, alpha, 2, texture=True), f"{mode} {alpha}")
        mix = {a.expression_names[1]: 0.7, a.expression_names[-1]: 0.6}
        assert_same_faces([a.generate(9, mix, 1.4, 4)], [b.generate(9, mix, 1.4, 4)], f"{mode} mix")
        assert_same_faces(a.sweep(3, a.expression_names[2], [0, 0.5, 2.0], 1),
                          b.sweep(3, b.expression_names[2], [0, 0.5, 2.0], 1), f"{mode} sweep")
    assert_same_faces([a.style_edit(1, 2, a.expression_names[1])], [b.style_edit(1, 2, b.expression_names[1])], "style")


def test_numpy_and_torch_give_the_same_tiny_faces(exported):
    compare_everything(exported[0])


def test_numpy_and_torch_give_the_same_action_unit_faces(exported_au):
    folder, stored = exported_au
    a, b = both(folder)
    aus = {stored.au_names[0]: 3.0, stored.au_names[3]: 1.5, stored.au_names[-1]: 5.0}
    for alpha in (0.0, 1.0, 2.5):
        assert_same_faces([a.generate(4, aus, alpha, 1)], [b.generate(4, aus, alpha, 1)], f"AU {alpha}")
    assert np.abs(a.generate(4, aus).vertices - a.generate(4, {}).vertices).max() > 1e-3  # the units move the face


def test_numpy_and_torch_give_the_same_quick_sized_faces(exported, tmp_path):
    folder = random_model(exported[0], tmp_path / "quick", *config_networks("quick"))
    compare_everything(folder)
    model = FaceModel(folder)
    assert model.generate(1, 2).texture.std() > 5  # random texture weights: a real signal, not the template


def test_the_bands_in_parallel_and_in_one_thread_give_one_texture(monkeypatch):
    import core.numpy_networks as networks
    from core.network_configs import TextureNetConfig, texture_tensor_shapes
    cfg = TextureNetConfig(num_identities=4, num_expressions=3, z_noise_dim=16, max_resolution=256,
                           channels=(16, 16, 16, 16, 8, 8, 8))  # 256 px: enough bands of rows to share out
    rng = np.random.default_rng(0)
    generator = networks.NumpyTextureGenerator(cfg, {k: rng.standard_normal(v, np.float32)
                                                     for k, v in texture_tensor_shapes(cfg).items()})
    codes = (rng.standard_normal((2, 20), np.float32), np.eye(3, dtype=np.float32)[:2],
             rng.standard_normal((2, 16), np.float32))
    pools, real_pool = [], networks._pool
    monkeypatch.setattr(networks, "_pool", lambda: pools.append(1) or real_pool())
    parallel = generator(*codes)
    assert pools  # threadpoolctl is in this venv and the machine has 2 cores or more: the bands were shared out
    pools.clear()
    monkeypatch.setitem(networks._threads, "controller", None)  # as in a Python without threadpoolctl
    serial = generator(*codes)
    assert not pools
    assert np.abs(parallel).max() > 0.01 and np.abs(parallel - serial).max() < 1e-4 * np.abs(serial).max()


def test_generation_needs_no_torch_safetensors_pillow_or_hub(exported, tmp_path):
    folder = exported[0]
    code = BLOCK + (
        "import numpy as np, json\n"
        "from core.face_model import FaceModel\n"
        f"m = FaceModel({str(folder)!r})\n"
        "f = m.generate(3, '2_smile', 1.3, 1)\n"
        "np.save('face.npy', f.vertices); np.save('texture.npy', f.texture)\n"
        "print(json.dumps([m.backend_line(), sorted(k for k in sys.modules if k.split('.')[0] in "
        "{'torch', 'safetensors', 'PIL', 'huggingface_hub'})]))\n"
        "from core.__main__ import main\n"
        f"sys.exit(main(['generate', '--model', {str(folder)!r}, '--seed', '3', '--expression', '2', '--out', "
        "'face.glb']))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line, loaded = json.loads(proc.stdout.splitlines()[0])
    assert line == "numpy on cpu" and loaded == []
    reference = FaceModel(folder, backend="torch").generate(3, "2_smile", 1.3, 1)
    assert np.abs(np.load(tmp_path / "face.npy") - reference.vertices).max() * MM_PER_CM < 1e-3
    assert np.abs(np.load(tmp_path / "texture.npy").astype(int) - reference.texture).max() <= 1
    assert (tmp_path / "face.glb").stat().st_size > 100_000


def test_a_broken_torch_falls_back_to_numpy_and_says_why(exported, tmp_path):
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise OSError('libtorch_cpu.so: cannot open shared object file')\n")
    code = ("import json\nfrom core.face_model import FaceModel\n"
            f"m = FaceModel({str(exported[0])!r}, backend='torch')\n"
            "print(json.dumps([m.backend.name, m.backend_line(), m.generate(1, 2).vertices.shape[0]]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}:{ROOT}"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    name, line, vertices = json.loads(proc.stdout)
    assert name == "numpy" and vertices > 0
    assert "torch could not be imported (OSError: libtorch_cpu.so" in line and "generating with numpy" in line


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_config_asking_for_more_than_the_file_holds_is_refused_before_allocating(exported, tmp_path, backend):
    import resource
    bad = tmp_path / "huge"
    shutil.copytree(exported[0], bad)
    config = json.loads((bad / "config.json").read_text())
    config["shape"]["generator"] = [200_000, 200_000]  # 160 GB of G_exp weights
    (bad / "config.json").write_text(json.dumps(config))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelFormatError, match=r"shape.safetensors: tensor 'g_exp.net.0.weight' has shape \(\d+, "
                                               r"\d+\), the config says \(200000, \d+\)") as caught:
        FaceModel(bad, backend=backend)
    assert caught.value.path == bad / "shape.safetensors"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing large was made


def test_unknown_dtypes_missing_tensors_and_other_format_versions_are_named(exported, tmp_path):
    from safetensors.numpy import load_file
    bad = tmp_path / "bad"
    shutil.copytree(exported[0], bad)
    tensors = load_file(bad / "shape.safetensors")
    save_file({k: v for k, v in tensors.items() if k != "g_id.scale.std"}, bad / "shape.safetensors")
    with pytest.raises(ModelFormatError, match=r"shape.safetensors: missing tensor 'g_id.scale.std'"):
        FaceModel(bad)
    save_file({**tensors, "decoder.0.bias": tensors["decoder.0.bias"].astype(np.complex64)}, bad / "shape.safetensors")
    with pytest.raises(ModelFormatError, match=r"shape.safetensors: tensor 'decoder.0.bias' has dtype C64, which "
                                               r"facecam does not read"):
        FaceModel(bad)
    shutil.copyfile(exported[0] / "shape.safetensors", bad / "shape.safetensors")
    config = json.loads((bad / "config.json").read_text())
    for version, words in ((0, r"format_version 0 is not one this facecam \(\d+\.\d+\.\d+\) reads: it reads 1 "
                                r"\(written and read by facecam 0.1.0 and later\)"),
                           (2, r"format_version 2 is newer than this facecam \(\d+\.\d+\.\d+\) reads \(1\)")):
        (bad / "config.json").write_text(json.dumps(dict(config, format_version=version)))
        with pytest.raises(ModelFormatError, match=words):
            FaceModel(bad)
