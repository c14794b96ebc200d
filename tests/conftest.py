import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import constants

from train import runs
from train.config import data_config, load_config
from train.data.ict import load_ict_model


def run_demo(cwd: Path, config) -> subprocess.CompletedProcess:
    """`python -m train demo --config CONFIG` in a fresh process with a bare environment, outputs under cwd."""
    return subprocess.run([sys.executable, "-m", "train", "demo", "--config", str(config)], cwd=cwd,
                          capture_output=True, text=True, timeout=1200,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd),
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="session")
def ict():
    return load_ict_model()


def tiny_config_dict(**facescape) -> dict:
    """A config small enough for tests: a few identities, 32 px textures."""
    return {"name": "tiny", "data": {
        "seed": 3, "style": {},
        "facescape": {"num_identities": 5, "split": [0.6, 0.2, 0.2], "texture_resolution": 32,
                      "store_textures": True, **facescape},
        "bp4d": {"num_identities": 3, "frames_per_task": 2, "split": [0.34, 0.33, 0.33], "texture_resolution": 32,
                 "store_textures": True}},
        "shape": {
            "network": {"code_dim": 24, "id_encoder": [64], "exp_encoder": [64], "decoder": [64], "id_dim": 16,
                        "exp_dim": 8, "z_id_dim": 8, "z_noise_dim": 4, "generator": [32], "id_generator": [24],
                        "discriminator": [32], "expression_sees_identity": True},
            "sae": {"epochs": 80, "batch_size": 16, "lr": 0.003, "recon_weight": 1.0, "id_weight": 1.0, "exp_weight": 1.0, "seed": 0, "cosine_decay": False,
                    "identity_mix": False, "weight_decay": 0.0,
                    "identity_swap_weight": 0.0},
            "cgan": {"epochs": 60, "batch_size": 16, "lr_g": 0.002, "lr_d": 0.002, "seed": 0, "z_id": "gaussian",
                     "lr_decay_fraction": 0.0, "paired_weight": 1.0,
                     "paired_with_noise": False}},
        "texture": {
            "network": {"z_noise_dim": 16, "start_resolution": 8, "max_resolution": 16, "channels": [16, 16, 8]},
            "train": {"epochs_per_phase": 1, "first_phase_epochs": 1, "epoch_samples": 0, "batch_size": 4, "lr": 0.002, "gp_weight": 10.0, "drift_weight": 0.001,
                      "id_weight": 1.0, "exp_weight": 1.0, "ema_beta": 0.9, "projection": False, "recon_weight": 0.0, "recon_detail_weight": 0.0, "pair_weight": 0.0,
                      "seed": 0}}}


def _train_and_export(folder, kind: str, epochs: int, texture: bool, name: str, trained_on: str, **network):
    """A tiny model of `kind` ("facescape" or "bp4d") trained for `epochs` and exported: (folder, sae, gan, set)."""
    from train.cgan import train_cgan
    from train.data.synthetic_sets import StoredSet, build_set
    from train.export import export_model
    from train.sae import train_sae
    from train.texture import train_texture
    spec = tiny_config_dict()
    spec["shape"]["sae"]["epochs"] = spec["shape"]["cgan"]["epochs"] = epochs
    spec["shape"]["network"].update(network)
    (folder / "tiny.json").write_text(json.dumps(spec))
    cfg = load_config(folder / "tiny.json")
    stored = StoredSet(build_set(kind, data_config(cfg), folder / "set", progress=False))
    sae = train_sae(cfg, stored, folder / "sae", progress=False)
    gan = train_cgan(cfg, sae, folder / "gan", progress=False)
    tex = train_texture(cfg, stored, folder / "tex", progress=False) if texture else None
    card = {"trained_on": trained_on, "license": "MIT", "metrics": None}
    return export_model(stored, sae, gan, tex, folder / "model", name, card), sae, gan, stored


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A tiny model trained (shape and texture) and exported: (model folder, SAE run, cGAN run, stored set)."""
    return _train_and_export(tmp_path_factory.mktemp("facemodel"), "facescape", 20, True, "facecam-tiny",
                             "the tiny test set")


@pytest.fixture(scope="session")
def exported_au(tmp_path_factory):
    """A tiny action-unit (BP4D-like) shape model, exported: (model folder, stored set)."""
    out, _, _, stored = _train_and_export(tmp_path_factory.mktemp("au_model"), "bp4d", 10, False, "facecam-tiny-au",
                                          "the tiny BP4D-like test set",
                                          code_dim=12)  # one training subject: 8 tasks x 2 frames
    return out, stored


def tiny_arkit_dict() -> dict:
    """The tiny config with an ARKit-like set (every person's range of motion and a few take frames) and rig."""
    from train.data.arkit import ROM_FRAMES
    d = tiny_config_dict()
    d["data"]["arkit"] = {"num_identities": 10, "frames_per_identity": ROM_FRAMES + 4, "split": [0.6, 0.2, 0.2],
                          "texture_resolution": 32, "store_textures": False}
    d["arkit_rig"] = {"identity_components": 5, "offset_components": 96, "ridge": 0.01}
    d["shape"]["arkit"] = {"sae": {"epochs": 30}, "cgan": {"epochs": 30}}
    return d


def tiny_arkit_config(folder: Path) -> dict:
    path = folder / "tiny_arkit.json"
    path.write_text(json.dumps(tiny_arkit_dict()))
    return load_config(path)


@pytest.fixture(scope="session")
def arkit_rig(tmp_path_factory):
    """A tiny ARKit-like set and the rig fitted on it: (config, stored set, rig folder)."""
    from train.arkit_rig import fit_rig, rig_fit_section, save_rig
    from train.data.synthetic_sets import StoredSet, build_set
    folder = tmp_path_factory.mktemp("arkit")
    cfg = tiny_arkit_config(folder)
    stored = StoredSet(build_set("arkit", data_config(cfg), folder / "set", progress=False))
    save_rig(fit_rig(stored, rig_fit_section(cfg)), folder / "rig")
    return cfg, stored, folder / "rig"


@pytest.fixture(scope="session")
def exported_rig(exported, arkit_rig, tmp_path_factory):
    """The tiny textured model of `exported`, exported again with the tiny ARKit rig."""
    from train.export import export_model
    _, sae, gan, stored = exported
    tex = sae.parent / "tex"
    return export_model(stored, sae, gan, tex, tmp_path_factory.mktemp("rig_model") / "model", "facecam-tiny-rig",
                        {"trained_on": "the tiny test set", "license": "MIT", "metrics": None}, rig_dir=arkit_rig[2])


@pytest.fixture
def tiny_config_path(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny_config_dict()))
    return path


@pytest.fixture
def tiny_cfg(tiny_config_path):
    return data_config(load_config(tiny_config_path))


def interrupt_after_epoch(monkeypatch, epoch: int) -> None:
    """Make every run raise KeyboardInterrupt right after logging `epoch` (after its row, before its checkpoint:
    the worst moment for a kill). Undo with monkeypatch.undo()."""
    original = runs.RunFolder.log_row

    def crash(self, row, completed):
        original(self, row, completed)
        if row["epoch"] == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.RunFolder, "log_row", crash)


@pytest.fixture
def loopback_only(monkeypatch):
    """Fail any attempt to leave the machine, and keep huggingface_hub from phoning home.

    huggingface_hub's user-agent code fetches an "agent harnesses" list from huggingface.co unless telemetry is off.
    """
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    escapes = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1"):
            escapes.append(address)
            raise OSError(f"test tried to reach {address}")
        return real_connect(sock, address)

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "::1", "localhost"):
            escapes.append(host)
            raise socket.gaierror(f"test tried to look up {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    assert not escapes, f"tests must not leave the machine: {escapes}"


def log_rows(run) -> list[dict]:
    """The rows of a run folder's log.csv."""
    with (run / "log.csv").open() as f:
        return list(csv.DictReader(f))
