"""`train seeds`: the shape pipeline per seed, each evaluated, bars summarised as worst / mean over the seeds."""
import json

from train.config import load_config
from train.seeds import run_seeds, seeded_config


def test_two_seeds_train_evaluate_and_summarise(tmp_path, monkeypatch):
    from conftest import tiny_config_dict
    spec = tiny_config_dict()
    spec["shape"]["sae"]["epochs"], spec["shape"]["cgan"]["epochs"] = 6, 4
    spec["shape"]["action_units"] = {"sae": {"seed": 7}}  # the action-unit model's: no bearing on this pipeline
    (tmp_path / "tiny.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)  # outputs/tiny/... lands here
    cfg = load_config(tmp_path / "tiny.json")
    assert seeded_config(cfg, 5)["shape"]["cgan"]["seed"] == 5 and cfg["shape"]["cgan"]["seed"] == 0
    summary = run_seeds(cfg, [0, 1])
    shape = tmp_path / "outputs/tiny/shape"
    assert (shape / "ae/sae.safetensors").is_file()
    assert (shape / "cgan/generators.safetensors").is_file()  # seed 0 is the config's own: the main runs
    assert (shape / "seeds/1/cgan/generators.safetensors").is_file() and not (shape / "seeds/0").exists()
    for seed in ("0", "1"):
        assert (tmp_path / f"outputs/tiny/eval/seeds/{seed}/report.json").is_file()
    rows = {r["quantity"]: r for r in summary["rows"]}
    acc = rows["generated expression accuracy"]
    assert acc["worst"] == min(acc["per_seed"].values())  # higher is better: the worst is the lowest
    err = rows["held-out reconstruction, SAE mean mm"]
    assert err["worst"] == max(err["per_seed"].values())
    # different seeds, different SAEs
    assert err["per_seed"]["0"] != err["per_seed"]["1"]
    text = (tmp_path / "outputs/tiny/eval/seeds/summary.md").read_text()
    assert "| generated identity accuracy (training z_id) | >= 0.90 |" in text and "seed 1" in text
    # a second call reuses every run and report
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "outputs").rglob("*.safetensors")}
    run_seeds(cfg, [0, 1])
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "outputs").rglob("*.safetensors")}
    # a config edited after the runs started: they are set aside (kept) and trained afresh, never reused silently
    import os
    later = (tmp_path / "outputs/tiny/shape/seeds/1/sae/config.json").stat().st_mtime + 10
    os.utime(tmp_path / "tiny.json", (later, later))
    run_seeds(cfg, [1])
    assert sorted(p.name.split(".")[0] for p in (shape / "seeds/1").glob("*.before-*")) == ["cgan", "sae"]
    assert (shape / "seeds/1/cgan/generators.safetensors").stat().st_mtime > later - 10
    # an SAE rewritten after its cGAN started (retrained by hand): the cGAN is set aside, the SAE kept
    os.utime(tmp_path / "tiny.json", (1_000_000_000, 1_000_000_000))  # the config, this time, older than every run
    sae_weights = shape / "seeds/1/sae/sae.safetensors"
    os.utime(sae_weights, (later + 100, later + 100))
    run_seeds(cfg, [1])
    assert len(list((shape / "seeds/1").glob("cgan.before-*"))) == 2 and len(list((shape / "seeds/1").glob("sae.*"))) == 1


def test_the_action_unit_pipeline_over_seeds(tmp_path, monkeypatch):
    from conftest import tiny_config_dict
    spec = tiny_config_dict()
    spec["data"]["bp4d"].update(num_identities=5, split=[0.6, 0.2, 0.2])
    spec["shape"]["sae"]["epochs"], spec["shape"]["cgan"]["epochs"] = 6, 4
    spec["shape"]["action_units"] = {"sae": {"seed": 0}, "cgan": {"paired_with_noise": True}}
    (tmp_path / "tiny.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(tmp_path / "tiny.json")
    seeded = seeded_config(cfg, 4)["shape"]
    assert seeded["action_units"]["sae"]["seed"] == 4  # an override naming a seed follows the seed asked
    assert "seed" not in seeded["action_units"]["cgan"] and seeded["cgan"]["seed"] == 4
    summary = run_seeds(cfg, [0, 2], "bp4d")
    shape, evals = tmp_path / "outputs/tiny/shape", tmp_path / "outputs/tiny/eval"
    assert (shape / "cgan_bp4d/generators.safetensors").is_file()  # seed 0 is the config's own: the main AU runs
    assert (shape / "seeds_bp4d/2/cgan/generators.safetensors").is_file() and not (shape / "seeds").exists()
    assert not (shape / "ae").exists()  # the holistic baseline is not needed
    for seed in ("0", "2"):
        report = json.loads((evals / f"seeds_bp4d/{seed}/report_au.json").read_text())
        assert len(report["au_response_levels"]) == 17
    assert json.loads((shape / "seeds_bp4d/2/sae/config.json").read_text())["sae"]["seed"] == 2
    rows = {r["quantity"]: r for r in summary["rows"]}
    control = rows["control: AU intensities of generated meshes read back by the real-mesh regressor, mean abs. "
                   "error, levels"]
    assert control["worst"] == max(control["per_seed"].values()) and control["per_seed"]["0"] != control["per_seed"]["2"]
    rising = rows["AUs whose read-back intensity rises as that AU is asked 0 -> 5"]
    assert rising["worst"] == min(rising["per_seed"].values()) and isinstance(rising["worst"], int)
    text = (evals / "seeds_bp4d/summary.md").read_text()
    assert "--set bp4d --seeds 0 2" in text and "action-unit" in text
