"""Where model weights come from: a local folder, a pinned hub repo, or a name in weights_manifest.json.

Hub files are fetched with huggingface_hub into its usual cache and checked against the manifest's sha256 and size
before anyone reads them. Only .safetensors, .json and .png files are accepted: nothing here is ever unpickled.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from .atomic import file_sha256

FORMAT_VERSION = 1
# core/ and weights_manifest.json sit side by side both in the repo and in the Blender extension zip.
DEFAULT_MANIFEST = Path(__file__).resolve().parents[1] / "weights_manifest.json"
WEIGHT_SUFFIXES = (".safetensors", ".json", ".png", ".md")  # .md: the model card, read as text
LOCAL_ROUTE = "train and export a model locally (`python -m train export ...`) and pass its folder"

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class WeightsError(Exception):
    """Any failure to find, fetch or trust model weights."""


class ManifestError(WeightsError): ...
class SourceError(WeightsError): ...
class UnknownModelError(WeightsError): ...
class WeightsOfflineError(WeightsError): ...
class RepoNotFoundError(WeightsError): ...
class RevisionNotFoundError(WeightsError): ...
class WeightsFileNotFoundError(WeightsError): ...
class DownloadError(WeightsError): ...
class ChecksumMismatchError(WeightsError): ...
class SizeMismatchError(WeightsError): ...


@dataclass(frozen=True)
class ModelEntry:
    name: str
    repo_id: str
    revision: str
    license: str
    description: str
    files: dict[str, tuple[str, int]]  # filename -> (sha256, size)


@dataclass(frozen=True)
class WeightsManifest:
    format_version: int
    status: str
    models: dict[str, ModelEntry]
    path: Path | None = None


@dataclass(frozen=True)
class LocalSource:
    path: Path


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    revision: str


@dataclass(frozen=True)
class ModelSource:
    entry: ModelEntry


Source = LocalSource | HubSource | ModelSource


def check_weight_filename(name: str) -> None:
    """Refuse anything that could be a pickle (or escape the repo): weights are data, never code."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise SourceError(f"weights file name {name!r} must be a plain relative path like 'decoder.safetensors'")
    if not name.endswith(WEIGHT_SUFFIXES):
        raise SourceError(f"weights file {name!r} is refused: only {', '.join(WEIGHT_SUFFIXES)} files are loaded "
                          f"(pickle-based formats such as .bin/.pt/.pth/.ckpt can run code when opened)")


def check_revision(revision: str, what: str) -> None:
    if not isinstance(revision, str) or not _COMMIT.fullmatch(revision):
        raise SourceError(f"{what}: revision {revision!r} is not a commit sha. Revisions must be pinned to a full "
                          f"40-hex lowercase commit sha (not a branch or tag such as 'main'), so the weights cannot "
                          f"change under you")


def load_manifest(path: str | os.PathLike = DEFAULT_MANIFEST) -> WeightsManifest:
    """Read and validate weights_manifest.json; every problem names the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ManifestError(f"{path}: cannot read the weights manifest: {e}") from e

    def need(cond: bool, field: str, expected: str) -> None:
        if not cond:
            raise ManifestError(f"{path}: field {field!r} must be {expected}")

    def fields(obj: object, field: str, required: set[str], optional: frozenset[str] = frozenset()) -> dict:
        need(isinstance(obj, dict), field, "an object")
        unknown, missing = sorted(set(obj) - required - optional), sorted(required - set(obj))
        if unknown:
            raise ManifestError(f"{path}: unknown field(s) {unknown} in {field!r}; "
                                f"allowed: {sorted(required | optional)}")
        if missing:
            raise ManifestError(f"{path}: missing field(s) {missing} in {field!r}")
        return obj

    data = fields(data, "<top level>", {"format_version", "models"}, frozenset({"status"}))
    version = data["format_version"]
    need(type(version) is int and version >= 1, "format_version", "a positive integer")
    if version > FORMAT_VERSION:
        raise ManifestError(f"{path}: format_version {version} was written by a newer facecam (this one reads up to "
                            f"{FORMAT_VERSION}); upgrade facecam")
    status = data.get("status", "")
    need(isinstance(status, str), "status", "a string")

    need(isinstance(data["models"], dict), "models", "an object mapping model names to entries")
    models = {}
    for name, m in data["models"].items():
        at = f"models.{name}"
        need(bool(_MODEL_NAME.fullmatch(name)), at, "named with letters, digits, '.', '_' or '-' (no '/')")
        m = fields(m, at, {"repo_id", "revision", "license", "description", "files"})
        need(isinstance(m["repo_id"], str) and bool(_REPO_ID.fullmatch(m["repo_id"])), f"{at}.repo_id",
             "'owner/name'")
        if not (isinstance(m["revision"], str) and _COMMIT.fullmatch(m["revision"])):
            raise ManifestError(f"{path}: field '{at}.revision' is {m['revision']!r}; it must be a 40-hex lowercase "
                                f"commit sha, not a branch or tag such as 'main', so the weights cannot change "
                                f"under you")
        need(isinstance(m["license"], str) and bool(m["license"].strip()), f"{at}.license", "a non-empty string")
        need(isinstance(m["description"], str) and "\n" not in m["description"], f"{at}.description",
             "a one-line string")
        need(isinstance(m["files"], dict) and bool(m["files"]), f"{at}.files", "a non-empty object")
        files = {}
        for fname, spec in m["files"].items():
            fat = f"{at}.files.{fname}"
            try:
                check_weight_filename(fname)
            except SourceError as e:
                raise ManifestError(f"{path}: field {fat!r}: {e}") from None
            spec = fields(spec, fat, {"sha256", "size"})
            need(isinstance(spec["sha256"], str) and bool(_SHA256.fullmatch(spec["sha256"])), f"{fat}.sha256",
                 "a 64-hex lowercase sha256")
            need(type(spec["size"]) is int and spec["size"] >= 0, f"{fat}.size", "an integer >= 0 (bytes)")
            files[fname] = (spec["sha256"], spec["size"])
        models[name] = ModelEntry(name, m["repo_id"], m["revision"], m["license"], m["description"], files)
    return WeightsManifest(version, status, models, path)


def parse_source(source: str, manifest: WeightsManifest | None = None) -> Source:
    """Decide what `source` names: an existing folder, 'owner/name@<commit sha>', or a model in the manifest.

    An existing folder wins over a model of the same name; `manifest` defaults to the bundled weights_manifest.json.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return LocalSource(path)
    if path.exists():
        raise SourceError(f"{source!r} is a file; pass the folder that holds the exported model")
    if "@" in source:
        repo_id, revision = source.rsplit("@", 1)
        if not _REPO_ID.fullmatch(repo_id):
            raise SourceError(f"{source!r}: {repo_id!r} is not a hub repo id of the form 'owner/name'")
        check_revision(revision, source)
        return HubSource(repo_id, revision)
    if "/" in source or os.sep in source or source.startswith((".", "~")):
        hint = (f"; for a hub repo, pin the revision to a commit: '{source}@<40-hex commit sha>' (branch names such "
                f"as 'main' are refused, so the weights cannot change under you)" if _REPO_ID.fullmatch(source) else "")
        raise SourceError(f"{source!r} is not an existing folder{hint}")
    manifest = load_manifest() if manifest is None else manifest
    if source in manifest.models:
        return ModelSource(manifest.models[source])
    where = manifest.path or "the weights manifest"
    if not manifest.models:
        raise UnknownModelError(f"unknown model {source!r}: no facecam weights are published yet ({where}: "
                                f"{manifest.status!r}). Instead, {LOCAL_ROUTE}")
    raise UnknownModelError(f"unknown model {source!r}; known models ({where}): {', '.join(sorted(manifest.models))}. "
                            f"Or {LOCAL_ROUTE}, or name a hub repo as 'owner/name@<40-hex commit sha>'")


def _offline() -> bool:
    """huggingface_hub reads HF_HUB_OFFLINE once, at import; read it again so setting it later still counts."""
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def discard_cached(path: Path) -> None:
    """Remove a cached file and the blob it links to; huggingface_hub would relink a surviving blob untouched."""
    blob = path.resolve() if path.is_symlink() else None
    path.unlink(missing_ok=True)
    if blob is not None:
        blob.unlink(missing_ok=True)


def fetch_files(repo_id: str, revision: str, files: Mapping[str, tuple[str | None, int | None]],
                cache_dir: str | os.PathLike | None = None, endpoint: str | None = None, offline: bool = False,
                on_file: Callable[[str, int, int], None] | None = None) -> dict[str, Path]:
    """Download (or reuse from the cache) just `files` of repo_id@revision; each is checked before it is returned.
    offline: the cache only, as with HF_HUB_OFFLINE; on_file(name, index, total) before each file."""
    # huggingface_hub 2.4 otherwise contacts huggingface.co itself on every call (a telemetry list), whatever the
    # endpoint; it reads this at import, so it counts when facecam is first to import it. A user's own setting wins.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        from huggingface_hub import constants, errors, hf_hub_download
    except ImportError as e:
        raise WeightsError(f"fetching weights from the hub needs the huggingface_hub package ({e}); install it, "
                           f"or {LOCAL_ROUTE}") from e
    check_revision(revision, repo_id)
    for name in files:
        check_weight_filename(name)
    env_offline = _offline()
    offline = offline or env_offline
    where = f"{repo_id}@{revision}"
    server = endpoint or constants.ENDPOINT
    if not offline:
        _fail_fast_if_unreachable(repo_id, revision, list(files), cache_dir, endpoint, server)
    paths = {}
    for index, (name, (sha256, size)) in enumerate(files.items()):
        if on_file is not None:
            on_file(name, index, len(files))
        try:
            # With a commit sha the cached copy is returned without any request, so cached weights work offline.
            path = Path(hf_hub_download(repo_id, name, revision=revision, cache_dir=cache_dir, endpoint=endpoint,
                                        local_files_only=offline))
        except errors.LocalEntryNotFoundError as e:  # before EntryNotFoundError: it is one
            why = ("HF_HUB_OFFLINE is set. Go online once (unset HF_HUB_OFFLINE) to download it" if env_offline else
                   "offline mode is on. Go online once to download it" if offline else
                   f"the hub at {server} could not be reached. Check the connection and go online once to download it")
            raise WeightsOfflineError(f"{name!r} of {where} is not in the local cache and {why}, "
                                      f"or {LOCAL_ROUTE}") from e
        except errors.EntryNotFoundError as e:
            raise WeightsFileNotFoundError(f"{where} on {server} has no file {name!r}; check the file name or the "
                                           f"pinned revision") from e
        except errors.RevisionNotFoundError as e:
            raise RevisionNotFoundError(f"{repo_id} on {server} has no revision {revision}; check the commit sha in "
                                        f"the manifest or source") from e
        except errors.RepositoryNotFoundError as e:  # also GatedRepoError
            raise RepoNotFoundError(f"repo {repo_id} was not found on {server} (or is private/gated: log in with "
                                    f"`hf auth login` if you have access)") from e
        except (errors.HfHubHTTPError, OSError, ValueError) as e:
            raise DownloadError(f"downloading {name!r} of {where} from {server} failed: {e}") from e
        if size is not None and (actual_size := path.stat().st_size) != size:
            discard_cached(path)
            raise SizeMismatchError(f"{name!r} of {where}: expected {size} bytes, got {actual_size}; the bad copy was "
                                    f"removed from the cache; if this repeats, the hub copy or the manifest is wrong")
        if sha256 is not None and (actual := file_sha256(path)) != sha256:
            discard_cached(path)
            raise ChecksumMismatchError(f"{name!r} of {where}: sha256 mismatch, expected {sha256}, got {actual}; the "
                                        f"bad copy was removed from the cache; if this repeats, the hub copy or the "
                                        f"manifest is wrong")
        paths[name] = path
    return paths


def _fail_fast_if_unreachable(repo_id: str, revision: str, names: list[str], cache_dir, endpoint: str | None,
                              server: str) -> None:
    """huggingface_hub retries a refused connection for about 25 s (backoff 1+2+4+8+8 s) before it gives up on a file
    it does not have; retrying cannot fix a refused connection, so one HEAD without retries tells at once. Timeouts
    and server errors (which retrying can fix) are left to huggingface_hub; cached files need no request at all."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    missing = [n for n in names if not isinstance(try_to_load_from_cache(repo_id, n, cache_dir=cache_dir,
                                                                         revision=revision), str)]
    if not missing:
        return
    try:
        import httpx2 as http  # huggingface_hub 2's HTTP client
    except ImportError:
        import httpx as http
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, missing[0], revision=revision, endpoint=endpoint),
                             retry_on_errors=False)
    except http.ConnectError as e:
        raise WeightsOfflineError(f"{missing[0]!r} of {repo_id}@{revision} is not in the local cache and the hub at "
                                  f"{server} refused the connection or could not be found ({e}). Check the "
                                  f"connection and go online once to download it, or {LOCAL_ROUTE}") from e
    except Exception:  # noqa: BLE001 - every other answer (404, 401, 5xx) is for hf_hub_download to report as usual
        return


def fetch_model_files(entry: ModelEntry, names: list[str] | None = None, cache_dir: str | os.PathLike | None = None,
                      endpoint: str | None = None, offline: bool = False,
                      on_file: Callable[[str, int, int], None] | None = None) -> dict[str, Path]:
    """fetch_files for a manifest entry: only `names` (default all), each checked against its sha256 and size."""
    names = list(entry.files) if names is None else names
    missing = [n for n in names if n not in entry.files]
    if missing:
        raise WeightsFileNotFoundError(f"model {entry.name!r} lists no file(s) {missing} in the weights manifest; "
                                       f"it has: {', '.join(entry.files)}")
    return fetch_files(entry.repo_id, entry.revision, {n: entry.files[n] for n in names}, cache_dir, endpoint,
                       offline, on_file)
