"""A loopback stand-in for the Hugging Face hub, good enough for the real huggingface_hub client.

It speaks the resolve protocol `hf_hub_download` uses: HEAD/GET /{owner}/{name}/resolve/{revision}/{filename}
answered with X-Repo-Commit, ETag and Content-Length. "LFS" files (.safetensors by default) are answered with a 302 to
a second listener (a different origin, like the hub's CDN) carrying X-Linked-Etag (the sha256) and X-Linked-Size,
because the client takes an off-hub redirect's metadata from the 302 itself and then GETs the CDN url. Misses are 404s
with X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound, which the client maps to its own exceptions.
"""
from __future__ import annotations

import hashlib
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

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
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

            def _answer(self, body: bool) -> None:
                path = urlsplit(self.path).path
                with server._lock:
                    server.requests.append((self.command, ("cdn:" if cdn else "") + path))
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
