"""A loopback stand-in for the Hugging Face hub, good enough for the real huggingface_hub client.

It speaks the resolve protocol `hf_hub_download` uses: HEAD/GET /{owner}/{name}/resolve/{revision}/{filename}
answered with X-Repo-Commit, ETag and Content-Length. "LFS" files (.safetensors by default) are answered with a 302 to
a second listener (a different origin, like the hub's CDN) carrying X-Linked-Etag (the sha256) and X-Linked-Size,
because the client takes an off-hub redirect's metadata from the 302 itself and then GETs the CDN url. Misses are 404s
with X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound, which the client maps to its own exceptions.

It also takes uploads the way `HfApi.create_repo` and `upload_folder` make them (with HF_HUB_DISABLE_XET=1, the
client's legacy LFS route): POST /api/validate-yaml (the model card needs a metadata block with a license),
POST /api/repos/create, POST /api/models/{repo}/preupload/{rev} (LFS for .safetensors,
regular otherwise), POST /{repo}.git/info/lfs/objects/batch (upload actions pointing at the CDN listener, which takes
the PUT), and POST /api/models/{repo}/commit/{rev} (ndjson: header, inline base64 files, lfsFile pointers), which makes
a new commit. Write requests need `Authorization: Bearer {write_token}`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class _File:
    data: bytes
    lfs: bool
    served: bytes | None = None  # what is actually sent, when tampered

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_etag(self) -> str:  # the hub's ETag for a non-LFS file is its git blob sha1
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass
class _Repo:
    commit: str
    branches: dict[str, str]
    files: dict[str, _File] = field(default_factory=dict)


class HubServer:
    """Serves repos from memory on 127.0.0.1; `url` is the endpoint to hand to huggingface_hub."""

    def __init__(self, write_token: str = "hf_loopback_write") -> None:
        self.repos: dict[str, _Repo] = {}
        self.write_token = write_token
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> data PUT to the CDN, waiting for a commit to use them
        self.commits: list[dict] = []  # the header of every commit made through the API
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, hub and CDN
        self._lock = threading.Lock()
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(cdn=False))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(cdn=True))
        # A short poll interval: shutdown() waits for it, and tests stop a server each.
        self._threads = [threading.Thread(target=s.serve_forever, args=(0.02,), daemon=True)
                         for s in (self._hub, self._cdn)]
        for t in self._threads:
            t.start()
        self.running = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def add_repo(self, repo_id: str, commit: str | None = None, branch: str | None = "main") -> str:
        """Create an empty repo at one commit (random unless given); returns the commit sha."""
        commit = commit or secrets.token_hex(20)
        self.repos[repo_id] = _Repo(commit, {branch: commit} if branch else {})
        return commit

    def add_file(self, repo_id: str, filename: str, data: bytes, lfs: bool | None = None) -> str:
        """Add a file (creating the repo if needed); returns its sha256. LFS defaults to True for .safetensors."""
        if repo_id not in self.repos:
            self.add_repo(repo_id)
        f = _File(data, filename.endswith(".safetensors") if lfs is None else lfs)
        self.repos[repo_id].files[filename] = f
        return f.sha256

    def tamper(self, repo_id: str, filename: str, data: bytes | None) -> None:
        """Serve `data` instead of the file while advertising the original's sha256 and size; None undoes it."""
        self.repos[repo_id].files[filename].served = data

    def stop(self) -> None:
        if self.running:
            self.running = False
            for s in (self._hub, self._cdn):
                s.shutdown()
                s.server_close()
            for t in self._threads:
                t.join()

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handler(self, cdn: bool) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def do_POST(self) -> None:
                self._answer(body=True)

            def do_PUT(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                with server._lock:
                    server.requests.append((self.command, ("cdn:" if cdn else "") + path))
                    if self.command in ("POST", "PUT"):
                        status, headers, payload = server._write_reply(
                            self.command, path, data, self.headers.get("Authorization"), cdn)
                    else:
                        status, headers, payload = (server._cdn_reply if cdn else server._hub_reply)(path)
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(k, v)
                self.end_headers()
                if body:
                    self.wfile.write(payload)

        return Handler

    def _hub_reply(self, path: str) -> tuple[int, dict[str, str], bytes]:
        parts = path.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {"X-Error-Code": "EntryNotFound"}, b"not a resolve url"
        repo_id, revision, filename = f"{parts[0]}/{parts[1]}", unquote(parts[3]), unquote("/".join(parts[4:]))
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found"
        commit = revision if revision == repo.commit else repo.branches.get(revision)
        if commit is None:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b"Invalid rev id"
        f = repo.files.get(filename)
        if f is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b"Entry not found"
        if f.lfs:
            return 302, {"Location": f"{self.cdn_url}/blobs/{repo_id}/{f.sha256}", "X-Repo-Commit": commit,
                         "ETag": f'"{f.sha256}"', "X-Linked-Etag": f'"{f.sha256}"',
                         "X-Linked-Size": str(len(f.data))}, b""
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{f.git_etag}"'}, f.data if f.served is None else f.served

    def _cdn_reply(self, path: str) -> tuple[int, dict[str, str], bytes]:
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[0] == "blobs" and (repo := self.repos.get(f"{parts[1]}/{parts[2]}")):
            for f in repo.files.values():
                if f.lfs and f.sha256 == parts[3]:
                    return 200, {"ETag": f'"{f.sha256}"'}, f.data if f.served is None else f.served
        return 404, {}, b"no such blob"

    # --- uploads ------------------------------------------------------------------------------------------------

    def _write_reply(self, method: str, path: str, data: bytes, auth: str | None,
                     cdn: bool) -> tuple[int, dict[str, str], bytes]:
        def reply(status: int, obj, headers: dict[str, str] | None = None):
            return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode()

        parts = path.strip("/").split("/")
        if cdn:  # the LFS upload action's href: PUT /upload/{sha256}
            if method == "PUT" and len(parts) == 2 and parts[0] == "upload":
                if hashlib.sha256(data).hexdigest() != parts[1]:
                    return reply(400, {"error": "content does not match its oid"})
                self.lfs_objects[parts[1]] = data
                return 200, {"ETag": f'"{parts[1]}"'}, b""
            return reply(404, {"error": "no such upload url"})
        if auth != f"Bearer {self.write_token}":
            return reply(401, {"error": "Invalid credentials in Authorization header"},
                         {"X-Error-Message": "Invalid credentials in Authorization header"})
        if parts == ["api", "validate-yaml"]:  # the model card's metadata block, checked before any upload
            content = json.loads(data)["content"]
            head = content.split("\n---\n", 1)[0] if content.startswith("---\n") else ""
            keys = {line.split(":", 1)[0].strip() for line in head.splitlines()[1:] if ":" in line}
            if "license" not in keys:
                return reply(400, {"errors": [{"message": "metadata must be a YAML block with a license"}]})
            return reply(200, {"warnings": []})
        if parts[:3] == ["api", "repos", "create"]:
            request = json.loads(data)
            repo_id = f"{request.get('organization') or 'user'}/{request['name']}"
            if repo_id in self.repos:
                return reply(409, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"})
            self.add_repo(repo_id)
            return reply(200, {"url": f"{self.url}/{repo_id}"})
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
            repo_id, revision = f"{parts[2]}/{parts[3]}", unquote(parts[5])
            repo = self.repos.get(repo_id)
            if repo is None:
                return reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            if revision not in repo.branches:
                return reply(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
            if parts[4] == "preupload":
                files = json.loads(data)["files"]
                return reply(200, {"files": [{"path": f["path"], "shouldIgnore": False, "oid": None,
                                              "uploadMode": "lfs" if f["path"].endswith(".safetensors")
                                              else "regular"} for f in files]})
            return self._commit(repo_id, revision, data, reply)
        if len(parts) == 6 and parts[2:] == ["info", "lfs", "objects", "batch"] and parts[1].endswith(".git"):
            objects = json.loads(data)["objects"]
            return reply(200, {"transfer": "basic", "objects": [
                {"oid": o["oid"], "size": o["size"],
                 "actions": {"upload": {"href": f"{self.cdn_url}/upload/{o['oid']}"}}} for o in objects]})
        return reply(404, {"error": f"no write endpoint {path}"})

    def _commit(self, repo_id: str, branch: str, data: bytes, reply):
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            return reply(400, {"error": "a commit starts with its header"})
        repo = self.repos[repo_id]
        files = dict(repo.files)
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = _File(base64.b64decode(value["content"]), lfs=False)
            elif line["key"] == "lfsFile":
                blob = self.lfs_objects.get(value["oid"])
                if blob is None:
                    return reply(422, {"error": f"LFS object {value['oid']} for {value['path']} was never uploaded"})
                files[value["path"]] = _File(blob, lfs=True)
            else:
                return reply(400, {"error": f"this stand-in does not take {line['key']!r} operations"})
        commit = secrets.token_hex(20)
        repo.files, repo.commit, repo.branches[branch] = files, commit, commit
        self.commits.append(lines[0]["value"])
        return reply(200, {"commitUrl": f"{self.url}/{repo_id}/commit/{commit}", "commitOid": commit,
                           "success": True})
