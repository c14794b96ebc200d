"""Publish an exported model folder to the Hugging Face hub and pin it in weights_manifest.json.

    python -m train publish --model outputs/quick/export/facecam-quick --repo-id you/facecam-quick \
        [--name facecam-quick] [--update-manifest]

Uploads the folder with huggingface_hub (a token from `hf auth login` or HF_TOKEN), then prints the manifest entry
for the commit the upload made: repo id, that commit's sha as the pinned revision, every file's sha256 and size,
license and description from the folder's config.json and model card. --update-manifest also writes the entry into
weights_manifest.json (atomically; the status note goes once a model is listed).
"""
from __future__ import annotations

import glob
import json
from pathlib import Path

from core.atomic import file_sha256, write_text_atomic
from core.hub import DEFAULT_MANIFEST, check_revision, check_weight_filename, load_manifest


def folder_files(folder: Path) -> dict[str, dict]:
    """Every file of an exported folder with its sha256 and size; refuses names the loader would refuse, before
    anything is uploaded."""
    files = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        check_weight_filename(path.name)
        files[path.name] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    return files


def manifest_entry(folder: Path, repo_id: str, revision: str, files: dict[str, dict] | None = None) -> dict:
    """The manifest's record of a model folder as published at `revision` (`files` as folder_files gave them)."""
    check_revision(revision, f"{repo_id} revision")
    config = json.loads((folder / "config.json").read_text())
    kind = "action units" if config.get("expression_labels") == "action_units" else "expressions"
    description = (f"{config['name']}: {len(config['expressions'])} {kind}, "
                   f"{'shape and texture' if config.get('texture') else 'shape only'}; {config['trained_on']}")
    return {"repo_id": repo_id, "revision": revision, "license": config["license"],
            "description": " ".join(description.split()), "files": files or folder_files(folder)}


def add_to_manifest(manifest_path: Path, name: str, entry: dict) -> None:
    data = json.loads(manifest_path.read_text())
    data["models"][name] = entry
    data.pop("status", None)  # "nothing is published yet" stops being true
    write_text_atomic(manifest_path, json.dumps(data, indent=2) + "\n")
    load_manifest(manifest_path)  # what we wrote must read back


def main(args) -> int:
    folder = Path(args.model)
    if not (folder / "config.json").is_file() or not (folder / "README.md").is_file():
        raise FileNotFoundError(f"{folder}: not an exported model folder (config.json and README.md); run "
                                f"`python -m train export` first")
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    files = folder_files(folder)  # hashed first: the entry pins exactly what goes up
    api = HfApi()
    try:
        api.create_repo(args.repo_id, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=args.repo_id,
                                   allow_patterns=[glob.escape(name) for name in files],  # names, not patterns
                                   commit_message=f"facecam: {json.loads((folder / 'config.json').read_text())['name']}")
    except (HfHubHTTPError, httpx2.HTTPError, OSError, ValueError) as e:  # httpx2: hub unreachable
        raise ValueError(f"uploading {folder} to {args.repo_id} failed: {e} (log in with `hf auth login` or set "
                         f"HF_TOKEN; the hub must be reachable)") from None
    if folder_files(folder) != files:
        raise ValueError(f"{folder} changed while it was being uploaded to {args.repo_id} (commit {commit.oid}); "
                         f"publish again")
    entry = manifest_entry(folder, args.repo_id, commit.oid, files)
    name = args.name or json.loads((folder / "config.json").read_text())["name"]
    print(json.dumps({name: entry}, indent=2))
    if args.update_manifest:
        add_to_manifest(Path(args.manifest or DEFAULT_MANIFEST), name, entry)
        print(f"pinned in {args.manifest or DEFAULT_MANIFEST}")
    return 0
