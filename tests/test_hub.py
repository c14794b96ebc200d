"""core.hub against the real huggingface_hub client talking to a loopback hub (tests/hub_server.py); no internet."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from core import hub
from hub_server import HubServer

ROOT = Path(__file__).resolve().parents[1]
REPO = "facecam/tiny"


pytestmark = pytest.mark.usefixtures("loopback_only")  # conftest: nothing leaves the machine


def safetensors_bytes(tmp_path, name: str, **tensors) -> bytes:
    path = tmp_path / name
    save_file(tensors, str(path))
    return path.read_bytes()


@pytest.fixture
def server(tmp_path):
    """A hub holding one repo: a decoder and an encoder (safetensors, served as LFS) and a JSON config."""
    with HubServer() as s:
        s.commit = s.add_repo(REPO)
        s.blobs = {
            "decoder.safetensors": safetensors_bytes(tmp_path, "d.safetensors", w=torch.arange(12.0).reshape(3, 4)),
            "encoder.safetensors": safetensors_bytes(tmp_path, "e.safetensors", w=torch.ones(5)),
            "config.json": json.dumps({"code_dim": 24}).encode(),
        }
        s.specs = {name: (s.add_file(REPO, name, data), len(data)) for name, data in s.blobs.items()}
        yield s


def specs(server, *names):
    return {n: server.specs[n] for n in names}


def cached_files(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "models--facecam--tiny").rglob("*") if p.is_file() or p.is_symlink())


def test_first_download_verifies_and_returns_only_the_asked_files(server, tmp_path):
    cache = tmp_path / "cache"
    paths = hub.fetch_files(REPO, server.commit, specs(server, "decoder.safetensors", "config.json"),
                            cache_dir=cache, endpoint=server.url)
    assert set(paths) == {"decoder.safetensors", "config.json"}
    assert paths["decoder.safetensors"].is_relative_to(cache)
    assert torch.equal(load_file(paths["decoder.safetensors"])["w"], torch.arange(12.0).reshape(3, 4))
    assert json.loads(paths["config.json"].read_text()) == {"code_dim": 24}
    assert not any("encoder" in path for _, path in server.requests)  # inference never pulls the encoders
    assert ("GET", f"cdn:/blobs/{REPO}/{server.specs['decoder.safetensors'][0]}") in server.requests  # LFS route


def test_cached_files_need_no_server(server, tmp_path):
    args = (REPO, server.commit, specs(server, "decoder.safetensors", "config.json"))
    first = hub.fetch_files(*args, cache_dir=tmp_path, endpoint=server.url)
    n = len(server.requests)
    assert hub.fetch_files(*args, cache_dir=tmp_path, endpoint=server.url) == first
    assert len(server.requests) == n  # a pinned commit already cached is not even looked up
    server.stop()
    again = hub.fetch_files(*args, cache_dir=tmp_path, endpoint=server.url)
    assert again == first and json.loads(again["config.json"].read_text()) == {"code_dim": 24}


def test_offline_env_uses_the_cache_and_explains_a_miss(server, tmp_path, monkeypatch):
    hub.fetch_files(REPO, server.commit, specs(server, "decoder.safetensors"), cache_dir=tmp_path, endpoint=server.url)
    n = len(server.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # set after huggingface_hub was imported: core.hub must still see it
    paths = hub.fetch_files(REPO, server.commit, specs(server, "decoder.safetensors"), cache_dir=tmp_path,
                            endpoint=server.url)
    assert paths["decoder.safetensors"].is_file()
    with pytest.raises(hub.WeightsOfflineError) as e:
        hub.fetch_files(REPO, server.commit, specs(server, "encoder.safetensors"), cache_dir=tmp_path,
                        endpoint=server.url)
    msg = str(e.value)
    assert REPO in msg and server.commit in msg and "encoder.safetensors" in msg
    assert "HF_HUB_OFFLINE" in msg and "python -m train export" in msg
    assert len(server.requests) == n  # offline means no request at all


def test_offline_env_set_before_import_is_honoured(server, tmp_path):
    """The usual case: HF_HUB_OFFLINE in the environment when the process starts (huggingface_hub reads it then)."""
    code = ("import sys; from core import hub\n"
            "from huggingface_hub import constants; assert constants.is_offline_mode()\n"
            "try:\n"
            f"    hub.fetch_files({REPO!r}, {server.commit!r}, {{'config.json': (None, None)}}, "
            f"cache_dir={str(tmp_path)!r}, endpoint={server.url!r})\n"
            "except hub.WeightsOfflineError as e: print('offline-error', e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("offline-error") and "config.json" in out.stdout
    assert server.requests == []


def test_tampered_file_is_refused_and_not_kept(server, tmp_path):
    good = server.blobs["decoder.safetensors"]
    bad = good[:-4] + bytes(b ^ 0xFF for b in good[-4:])  # same size, so only the sha256 can tell
    server.tamper(REPO, "decoder.safetensors", bad)
    with pytest.raises(hub.ChecksumMismatchError) as e:
        hub.fetch_files(REPO, server.commit, specs(server, "decoder.safetensors"), cache_dir=tmp_path,
                        endpoint=server.url)
    msg = str(e.value)
    assert "decoder.safetensors" in msg and server.specs["decoder.safetensors"][0] in msg
    assert hashlib.sha256(bad).hexdigest() in msg
    assert cached_files(tmp_path) == []  # neither the snapshot link nor the blob survives

    server.tamper(REPO, "decoder.safetensors", None)
    paths = hub.fetch_files(REPO, server.commit, specs(server, "decoder.safetensors"), cache_dir=tmp_path,
                            endpoint=server.url)
    assert paths["decoder.safetensors"].read_bytes() == good


def test_size_mismatch_is_refused_and_not_kept(server, tmp_path):
    sha, size = server.specs["config.json"]
    with pytest.raises(hub.SizeMismatchError, match=rf"config.json.*expected {size + 1} bytes, got {size}"):
        hub.fetch_files(REPO, server.commit, {"config.json": (sha, size + 1)}, cache_dir=tmp_path,
                        endpoint=server.url)
    assert cached_files(tmp_path) == []
    gets = sum(m == "GET" for m, _ in server.requests)
    hub.fetch_files(REPO, server.commit, {"config.json": (sha, size)}, cache_dir=tmp_path, endpoint=server.url)
    assert sum(m == "GET" for m, _ in server.requests) == gets + 1  # downloaded afresh


def test_short_download_is_a_weights_error(server, tmp_path):
    server.tamper(REPO, "decoder.safetensors", server.blobs["decoder.safetensors"][:-10])
    with pytest.raises(hub.DownloadError, match="decoder.safetensors"):
        hub.fetch_files(REPO, server.commit, {"decoder.safetensors": (None, None)}, cache_dir=tmp_path,
                        endpoint=server.url)
    assert cached_files(tmp_path) == []


def test_missing_file_revision_and_repo(server, tmp_path):
    kw = dict(cache_dir=tmp_path, endpoint=server.url)
    with pytest.raises(hub.WeightsFileNotFoundError, match="generator.safetensors"):
        hub.fetch_files(REPO, server.commit, {"generator.safetensors": (None, None)}, **kw)
    with pytest.raises(hub.RevisionNotFoundError, match="f" * 40):
        hub.fetch_files(REPO, "f" * 40, {"config.json": (None, None)}, **kw)
    with pytest.raises(hub.RepoNotFoundError, match="facecam/nothing"):
        hub.fetch_files("facecam/nothing", server.commit, {"config.json": (None, None)}, **kw)


@pytest.mark.parametrize("revision, files", [("main", {"config.json": (None, None)}),
                                             ("f" * 40, {"model.bin": (None, None)}),
                                             ("f" * 40, {"../escape.json": (None, None)})])
def test_fetch_refuses_branches_and_pickles_before_any_request(server, tmp_path, revision, files):
    with pytest.raises(hub.SourceError, match="commit sha|only .safetensors|plain relative path"):
        hub.fetch_files(REPO, revision, files, cache_dir=tmp_path, endpoint=server.url)
    assert server.requests == []


# --- the manifest ------------------------------------------------------------------------------------------------

def manifest_dict(server=None, **entry) -> dict:
    files = ({n: {"sha256": sha, "size": size} for n, (sha, size) in server.specs.items()} if server else
             {"decoder.safetensors": {"sha256": "a" * 64, "size": 10}})
    return {"format_version": 1, "status": "one model", "models": {"tiny": {
        "repo_id": REPO, "revision": server.commit if server else "0" * 40, "license": "MIT",
        "description": "A tiny test model.", "files": files, **entry}}}


def write_manifest(tmp_path, data: dict) -> Path:
    path = tmp_path / "weights_manifest.json"
    path.write_text(json.dumps(data))
    return path


def test_manifest_loads(tmp_path):
    m = hub.load_manifest(write_manifest(tmp_path, manifest_dict()))
    entry = m.models["tiny"]
    assert (m.format_version, m.status, entry.repo_id, entry.revision) == (1, "one model", REPO, "0" * 40)
    assert entry.files == {"decoder.safetensors": ("a" * 64, 10)}


def test_committed_manifest_loads_and_publishes_nothing_yet():
    m = hub.load_manifest()
    assert m.path == ROOT / "weights_manifest.json"
    assert m.models == {} and "No facecam weights are published yet" in m.status


def _set(data: dict, dotted: str, value) -> dict:
    *keys, last = dotted.split(".")
    node = data
    for k in keys:
        node = node[k]
    node[last] = value
    return data


@pytest.mark.parametrize("field, value, expected", [
    ("models.tiny.revision", "main", r"models.tiny.revision.*'main'.*40-hex.*commit sha"),
    ("models.tiny.revision", "ABCDEF" + "0" * 34, r"models.tiny.revision.*commit sha"),
    ("models.tiny.files.decoder.safetensors", {"sha256": "xyz", "size": 10}, r"decoder.safetensors.sha256.*64-hex"),
    ("models.tiny.files.decoder.safetensors", {"sha256": "a" * 64, "size": -1}, r"decoder.safetensors.size"),
    ("models.tiny.files.decoder.safetensors", {"sha256": "a" * 64, "size": 1, "md5": "x"}, r"unknown field.*md5"),
    ("models.tiny.homepage", "x", r"unknown field.*homepage.*models.tiny"),
    ("extra", 1, r"unknown field.*extra"),
    ("format_version", 2, r"newer facecam.*upgrade"),
    ("format_version", "1", r"format_version.*positive integer"),
    ("models.tiny.files", {"model.bin": {"sha256": "a" * 64, "size": 1}}, r"model.bin.*refused.*pickle"),
    ("models.tiny.files", {"model.pt": {"sha256": "a" * 64, "size": 1}}, r"model.pt.*refused"),
    ("models.tiny.files", {}, r"models.tiny.files.*non-empty"),
    ("models.tiny.repo_id", "just-a-name", r"models.tiny.repo_id.*owner/name"),
    ("models.tiny.description", "two\nlines", r"description.*one-line"),
    ("models.tiny.license", "", r"license"),
])
def test_manifest_errors_name_the_file_and_field(tmp_path, field, value, expected):
    data = manifest_dict()
    if field.startswith("models.tiny.files.decoder.safetensors"):
        data["models"]["tiny"]["files"]["decoder.safetensors"] = value  # the file name holds a dot
    else:
        _set(data, field, value)
    path = write_manifest(tmp_path, data)
    with pytest.raises(hub.ManifestError, match=expected) as e:
        hub.load_manifest(path)
    assert str(path) in str(e.value)


def test_manifest_missing_field_and_bad_json(tmp_path):
    data = manifest_dict()
    del data["models"]["tiny"]["license"]
    with pytest.raises(hub.ManifestError, match=r"missing field.*license.*models.tiny"):
        hub.load_manifest(write_manifest(tmp_path, data))
    (tmp_path / "weights_manifest.json").write_text("{not json")
    with pytest.raises(hub.ManifestError, match="weights_manifest.json"):
        hub.load_manifest(tmp_path / "weights_manifest.json")


# --- sources -----------------------------------------------------------------------------------------------------

def test_parse_source_folder_repo_and_model(tmp_path):
    manifest = hub.load_manifest(write_manifest(tmp_path, manifest_dict()))
    assert hub.parse_source(str(tmp_path), manifest) == hub.LocalSource(tmp_path)
    assert hub.parse_source(f"owner/name@{'c' * 40}", manifest) == hub.HubSource("owner/name", "c" * 40)
    assert hub.parse_source("tiny", manifest) == hub.ModelSource(manifest.models["tiny"])


@pytest.mark.parametrize("source, expected", [
    ("owner/name", r"owner/name@<40-hex commit sha>"),
    ("owner/name@main", r"'main' is not a commit sha.*pinned"),
    ("owner/name@" + "C" * 40, r"not a commit sha"),
    ("not a repo@" + "c" * 40, r"not a hub repo id"),
    ("./no/such/folder", r"not an existing folder"),
])
def test_parse_source_errors(source, expected):
    with pytest.raises(hub.SourceError, match=expected):
        hub.parse_source(source, hub.load_manifest())


def test_parse_source_refuses_a_file(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"")
    with pytest.raises(hub.SourceError, match="folder"):
        hub.parse_source(str(tmp_path / "w.safetensors"), hub.load_manifest())


def test_unknown_model_names_known_models_and_local_route(tmp_path):
    manifest = hub.load_manifest(write_manifest(tmp_path, manifest_dict()))
    with pytest.raises(hub.UnknownModelError) as e:
        hub.parse_source("huge", manifest)
    assert "'huge'" in str(e.value) and "tiny" in str(e.value) and hub.LOCAL_ROUTE in str(e.value)


def test_unknown_model_with_nothing_published_says_so():
    with pytest.raises(hub.UnknownModelError) as e:
        hub.parse_source("facecam-base")  # the committed manifest
    msg = str(e.value)
    assert "no facecam weights are published yet" in msg and "No facecam weights are published yet" in msg  # status
    assert "python -m train export" in msg


def test_model_from_manifest_fetches_only_the_named_files(server, tmp_path):
    manifest = hub.load_manifest(write_manifest(tmp_path, manifest_dict(server)))
    source = hub.parse_source("tiny", manifest)
    paths = hub.fetch_model_files(source.entry, ["decoder.safetensors", "config.json"], cache_dir=tmp_path / "c",
                                  endpoint=server.url)
    assert set(paths) == {"decoder.safetensors", "config.json"}
    assert not any("encoder" in path for _, path in server.requests)
    with pytest.raises(hub.WeightsFileNotFoundError, match="generator.safetensors.*manifest"):
        hub.fetch_model_files(source.entry, ["generator.safetensors"], cache_dir=tmp_path / "c", endpoint=server.url)


def test_manifest_checksum_guards_a_changed_repo(server, tmp_path):
    data = manifest_dict(server)
    data["models"]["tiny"]["files"]["config.json"]["sha256"] = "b" * 64  # the hub's bytes no longer match the pin
    entry = hub.load_manifest(write_manifest(tmp_path, data)).models["tiny"]
    with pytest.raises(hub.ChecksumMismatchError, match="b" * 64):
        hub.fetch_model_files(entry, ["config.json"], cache_dir=tmp_path / "c", endpoint=server.url)


def test_facecam_turns_huggingface_hub_telemetry_off_unless_the_user_chose():
    code = ("import os\nfrom core import hub\ntry:\n    hub.fetch_files('a/b', 'main', {})\nexcept hub.SourceError:\n"
            "    pass\nfrom huggingface_hub import constants\nprint(constants.HF_HUB_DISABLE_TELEMETRY)\n")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_TELEMETRY"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(env, HF_HUB_DISABLE_TELEMETRY="0"),
                         capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_a_refused_connection_is_reported_within_seconds(tmp_path):
    import socket
    import time
    with socket.socket() as s:  # a port nothing listens on: bound, never listening, so the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(hub.WeightsOfflineError, match=rf"hub at http://127.0.0.1:{port} refused the connection"):
            hub.fetch_files(REPO, "a" * 40, {"config.json": (None, None)}, cache_dir=tmp_path / "cache",
                            endpoint=f"http://127.0.0.1:{port}")
        assert time.monotonic() - started < 5  # huggingface_hub alone retries for about 25 s
