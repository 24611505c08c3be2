#!/usr/bin/env python3
"""A fake GitHub for strata's tests: the REST API v3 subset the github
source uses (GitHub Enterprise Server layout: /api/v3/...), git over smart
HTTP from real bare repositories on disk (git http-backend), the git LFS
batch API, release-asset downloads through a 302 to a second port, and the
OAuth device flow. Python 3 standard library only.

Built from GitHub's documented responses: JSON shapes, `Link` pagination
(per_page default 30, at most 100), an ETag per page and 304 for a matching
If-None-Match, x-ratelimit-* headers on every API response, 401 for a
missing or wrong token, 410 for the issues of a repository with issues
disabled, 404 for what does not exist, 422 for a label that exists.

Deterministic: ids are given when the world is loaded, in its order, and an
ETag does not depend on the port the fake listens on, so the same world
gives the same bodies and ETags in every run (Deltaic's recorded output,
tests/fixtures/github/deltaic-acme.json, relies on it).

Usage: fake_github.py --port P --asset-port Q --git-root DIR --world FILE
Prints "ready" on stdout once both ports listen.

Control API (no token needed), under /_control/:
  POST world      replace the world with the JSON body
  POST mutate     {"op": ...}: comment, release, delete_repo, edit_issue,
                  create_repo (an empty repository to restore into)
  POST fault      {"kind": "secondary", "path": SUBSTR, "count": N,
                  "retry_after": S} | {"kind": "exhaust", "reset_in": S}
                  | {"kind": "git_hang", "path": SUBSTR, "secs": S}
  GET  stats      counters: requests, not_304, by status, the request log
  POST reset      zero the counters and the log
  GET  dump?org=O&repo=R   the repository's world entry (what restore made)
"""

import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.RLock()
STATE = {
    "world": {"orgs": {}},
    "requests": 0,
    "not_304": 0,
    "by_status": {},
    "log": [],
    "asset_log": [],
    "faults": [],
    "exhaust_until": 0,
    "remaining": 5000,
    "next_id": 100000,
    "device": {},
}
ARGS = None


def now_z(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t if t is not None else time.time()))


def next_id():
    with LOCK:
        STATE["next_id"] += 1
        return STATE["next_id"]


def assign_ids(world):
    """Give every object of `world` that lacks one an id, in the world's own
    order. Ids handed out on first use would depend on which client asked
    first (a draft release's `untagged-<id>` directory, ids inside bodies and
    so ETags): a world seeded the same way has the same ids, whoever asks."""
    for o in world.get("orgs", {}).values():
        o.setdefault("id", next_id())
        for t in o.get("teams", []):
            t.setdefault("id", next_id())
        for r in o.get("repos", {}).values():
            r.setdefault("id", next_id())
            for l in r.get("labels", []):
                l.setdefault("id", next_id())
            for m in r.get("milestones", []):
                m.setdefault("id", next_id())
            for i in r.get("issues", []):
                i.setdefault("id", next_id())
                for x in i.get("comments", []) + i.get("events", []):
                    x.setdefault("id", next_id())
                p = i.get("pull") or {}
                for x in p.get("reviews", []) + p.get("review_comments", []):
                    x.setdefault("id", next_id())
            for c in r.get("commit_comments", []):
                c.setdefault("id", next_id())
            for rel in r.get("releases", []):
                rel.setdefault("id", next_id())
                for a in rel.get("assets", []):
                    a.setdefault("id", next_id())


def base():
    return "http://127.0.0.1:%d" % ARGS.port


def api():
    return base() + "/api/v3"


def user_obj(login):
    if login is None:
        return None
    uid = int(hashlib.sha256(login.encode()).hexdigest()[:6], 16)
    return {
        "login": login,
        "id": uid,
        "node_id": "U_%d" % uid,
        "avatar_url": "%s/avatars/%s" % (base(), login),
        "url": "%s/users/%s" % (api(), login),
        "html_url": "%s/%s" % (base(), login),
        "type": "User",
        "site_admin": False,
    }


def org_of(name):
    return STATE["world"]["orgs"].get(name)


def repo_of(org, name):
    o = org_of(org)
    if o is None:
        return None
    return o.get("repos", {}).get(name)


def repo_obj(org, name, r):
    o = org_of(org)
    url = "%s/repos/%s/%s" % (api(), org, name)
    templates = {
        "archive_url": "/{archive_format}{/ref}", "assignees_url": "/assignees{/user}",
        "blobs_url": "/git/blobs{/sha}", "branches_url": "/branches{/branch}",
        "collaborators_url": "/collaborators{/collaborator}", "comments_url": "/comments{/number}",
        "commits_url": "/commits{/sha}", "compare_url": "/compare/{base}...{head}",
        "contents_url": "/contents/{+path}", "contributors_url": "/contributors",
        "deployments_url": "/deployments", "downloads_url": "/downloads", "events_url": "/events",
        "forks_url": "/forks", "git_commits_url": "/git/commits{/sha}", "git_refs_url": "/git/refs{/sha}",
        "git_tags_url": "/git/tags{/sha}", "hooks_url": "/hooks", "issue_comment_url": "/issues/comments{/number}",
        "issue_events_url": "/issues/events{/number}", "issues_url": "/issues{/number}",
        "keys_url": "/keys{/key_id}", "labels_url": "/labels{/name}", "languages_url": "/languages",
        "merges_url": "/merges", "milestones_url": "/milestones{/number}",
        "notifications_url": "/notifications{?since,all,participating}", "pulls_url": "/pulls{/number}",
        "releases_url": "/releases{/id}", "stargazers_url": "/stargazers", "statuses_url": "/statuses/{sha}",
        "subscribers_url": "/subscribers", "subscription_url": "/subscription", "tags_url": "/tags",
        "teams_url": "/teams", "trees_url": "/git/trees{/sha}",
    }
    out = {k: url + v for k, v in templates.items()}
    out.update({
        "id": r.setdefault("id", next_id()),
        "node_id": "R_%s" % name,
        "name": name,
        "full_name": "%s/%s" % (org, name),
        "private": r.get("private", False),
        "owner": {"login": org, "id": o.setdefault("id", next_id()), "type": "Organization",
                  "url": "%s/orgs/%s" % (api(), org)},
        "html_url": "%s/%s/%s" % (base(), org, name),
        "description": r.get("description"),
        "fork": False,
        "url": url,
        "git_url": "git://127.0.0.1/%s/%s.git" % (org, name),
        "clone_url": "%s/%s/%s.git" % (base(), org, name),
        "homepage": r.get("homepage"),
        "size": 1,
        "default_branch": r.get("default_branch", "main"),
        "archived": False,
        "disabled": False,
        "has_issues": r.get("has_issues", True),
        "has_projects": False,
        "has_wiki": r.get("has_wiki", True),
        "has_pages": False,
        "visibility": "private" if r.get("private") else "public",
        "created_at": r.get("created_at", "2020-01-01T00:00:00Z"),
        "updated_at": r.get("updated_at", "2020-01-01T00:00:00Z"),
        "pushed_at": r.get("pushed_at", "2020-01-01T00:00:00Z"),
        "ssh_url": "git@127.0.0.1:%s/%s.git" % (org, name),
        "svn_url": "%s/%s/%s" % (base(), org, name),
        "mirror_url": None,
        "forks_count": 0, "stargazers_count": 0, "watchers_count": 0, "open_issues_count": 0,
        "language": None,
    })
    return out


def label_obj(org, name, l):
    return {
        "id": l.setdefault("id", next_id()),
        "node_id": "LA_%s" % l["name"],
        "url": "%s/repos/%s/%s/labels/%s" % (api(), org, name, urllib.parse.quote(l["name"])),
        "name": l["name"],
        "color": l.get("color", "ededed"),
        "default": False,
        "description": l.get("description"),
    }


def milestone_obj(org, name, r, m):
    url = "%s/repos/%s/%s/milestones/%d" % (api(), org, name, m["number"])
    issues = [i for i in r.get("issues", []) if i.get("milestone") == m["number"]]
    return {
        "url": url,
        "html_url": "%s/%s/%s/milestone/%d" % (base(), org, name, m["number"]),
        "labels_url": url + "/labels",
        "id": m.setdefault("id", next_id()),
        "node_id": "MI_%d" % m["number"],
        "number": m["number"],
        "state": m.get("state", "open"),
        "title": m["title"],
        "description": m.get("description"),
        "creator": user_obj(m.get("creator", "ghost")),
        "open_issues": len([i for i in issues if i.get("state") == "open"]),
        "closed_issues": len([i for i in issues if i.get("state") == "closed"]),
        "created_at": m.get("created_at", "2020-01-01T00:00:00Z"),
        "updated_at": m.get("updated_at", "2020-01-01T00:00:00Z"),
        "closed_at": m.get("closed_at"),
        "due_on": m.get("due_on"),
    }


def issue_obj(org, name, r, i):
    url = "%s/repos/%s/%s/issues/%d" % (api(), org, name, i["number"])
    labels = []
    for ln in i.get("labels", []):
        # why: a label the repository does not list gets an id from its
        # name, not a new one on every request (bodies and ETags stay stable)
        l = next((x for x in r.get("labels", []) if x["name"] == ln),
                 {"name": ln, "id": int(hashlib.sha256(ln.encode()).hexdigest()[:6], 16)})
        labels.append(label_obj(org, name, l))
    ms = None
    if i.get("milestone") is not None:
        m = next((x for x in r.get("milestones", []) if x["number"] == i["milestone"]), None)
        if m is not None:
            ms = milestone_obj(org, name, r, m)
    kind = "pull" if i.get("pull") is not None else "issues"
    out = {
        "url": url,
        "repository_url": "%s/repos/%s/%s" % (api(), org, name),
        "labels_url": url + "/labels{/name}",
        "comments_url": url + "/comments",
        "events_url": url + "/events",
        "html_url": "%s/%s/%s/%s/%d" % (base(), org, name, kind, i["number"]),
        "id": i.setdefault("id", next_id()),
        "node_id": "I_%d" % i["number"],
        "number": i["number"],
        "title": i["title"],
        "user": user_obj(i.get("user", "ghost")),
        "labels": labels,
        "state": i.get("state", "open"),
        "locked": False,
        "assignee": user_obj(i.get("assignee")),
        "assignees": [user_obj(i["assignee"])] if i.get("assignee") else [],
        "milestone": ms,
        "comments": len(i.get("comments", [])),
        "created_at": i["created_at"],
        "updated_at": i["updated_at"],
        "closed_at": i.get("closed_at"),
        "author_association": "MEMBER",
        "body": i.get("body"),
        "state_reason": None,
    }
    if i.get("pull") is not None:
        pr = "%s/repos/%s/%s/pulls/%d" % (api(), org, name, i["number"])
        out["pull_request"] = {
            "url": pr,
            "html_url": out["html_url"],
            "diff_url": out["html_url"] + ".diff",
            "patch_url": out["html_url"] + ".patch",
            "merged_at": i["pull"].get("merged_at"),
        }
    return out


def comment_obj(org, name, i, c):
    c.setdefault("id", next_id())
    return {
        "id": c["id"],
        "node_id": "IC_%d" % c["id"],
        "url": "%s/repos/%s/%s/issues/comments/%d" % (api(), org, name, c["id"]),
        "html_url": "%s/%s/%s/issues/%d#issuecomment-%d" % (base(), org, name, i["number"], c["id"]),
        "issue_url": "%s/repos/%s/%s/issues/%d" % (api(), org, name, i["number"]),
        "user": user_obj(c.get("user", "ghost")),
        "created_at": c["created_at"],
        "updated_at": c.get("updated_at", c["created_at"]),
        "author_association": "MEMBER",
        "body": c.get("body"),
    }


def event_obj(org, name, e):
    e.setdefault("id", next_id())
    return {
        "id": e["id"],
        "node_id": "E_%d" % e["id"],
        "url": "%s/repos/%s/%s/issues/events/%d" % (api(), org, name, e["id"]),
        "actor": user_obj(e.get("actor")),
        "event": e["event"],
        "commit_id": e.get("commit_id"),
        "commit_url": None,
        "created_at": e["created_at"],
    }


def commit_comment_obj(org, name, c):
    c.setdefault("id", next_id())
    return {
        "id": c["id"],
        "node_id": "CC_%d" % c["id"],
        "url": "%s/repos/%s/%s/comments/%d" % (api(), org, name, c["id"]),
        "html_url": "%s/%s/%s/commit/%s#commitcomment-%d" % (base(), org, name, c["commit_id"], c["id"]),
        "body": c.get("body"),
        "path": c.get("path"),
        "position": c.get("position"),
        "line": c.get("line"),
        "commit_id": c["commit_id"],
        "user": user_obj(c.get("user", "ghost")),
        "created_at": c["created_at"],
        "updated_at": c.get("updated_at", c["created_at"]),
        "author_association": "MEMBER",
    }


def asset_obj(org, name, rel, a):
    a.setdefault("id", next_id())
    data = asset_bytes(a)
    return {
        "url": "%s/repos/%s/%s/releases/assets/%d" % (api(), org, name, a["id"]),
        "browser_download_url": "%s/%s/%s/releases/download/%s/%s" % (
            base(), org, name, rel.get("tag_name") or "untagged", a["name"]),
        "id": a["id"],
        "node_id": "RA_%d" % a["id"],
        "name": a["name"],
        "label": a.get("label"),
        "state": "uploaded",
        "content_type": a.get("content_type", "application/octet-stream"),
        "size": len(data),
        "download_count": 0,
        "created_at": a.get("created_at", a.get("updated_at", "2020-01-01T00:00:00Z")),
        "updated_at": a.get("updated_at", "2020-01-01T00:00:00Z"),
        "uploader": user_obj(a.get("uploader", "ghost")),
    }


def asset_bytes(a):
    if "data_b64" in a:
        return base64.b64decode(a["data_b64"])
    return a.get("data", "").encode()


def release_obj(org, name, rel):
    rel.setdefault("id", next_id())
    url = "%s/repos/%s/%s/releases/%d" % (api(), org, name, rel["id"])
    return {
        "url": url,
        "html_url": "%s/%s/%s/releases/tag/%s" % (base(), org, name, rel.get("tag_name")),
        "assets_url": url + "/assets",
        "upload_url": "%s/api/uploads/repos/%s/%s/releases/%d/assets{?name,label}" % (
            base(), org, name, rel["id"]),
        "tarball_url": None,
        "zipball_url": None,
        "id": rel["id"],
        "node_id": "RE_%d" % rel["id"],
        "tag_name": rel.get("tag_name"),
        "target_commitish": rel.get("target_commitish", "main"),
        "name": rel.get("name"),
        "body": rel.get("body"),
        "draft": rel.get("draft", False),
        "prerelease": rel.get("prerelease", False),
        "created_at": rel.get("created_at", "2020-01-01T00:00:00Z"),
        "published_at": rel.get("published_at"),
        "author": user_obj(rel.get("author", "ghost")),
        "assets": [asset_obj(org, name, rel, a) for a in rel.get("assets", [])],
    }


def pull_obj(org, name, r, i):
    p = i["pull"]
    url = "%s/repos/%s/%s/pulls/%d" % (api(), org, name, i["number"])

    def side(prefix):
        ref = p.get(prefix + "_ref", "main")
        return {"label": "%s:%s" % (org, ref), "ref": ref, "sha": p.get(prefix + "_sha", "0" * 40),
                "user": user_obj(org), "repo": repo_obj(org, name, r)}

    return {
        "url": url,
        "id": i.setdefault("id", next_id()),
        "node_id": "PR_%d" % i["number"],
        "html_url": "%s/%s/%s/pull/%d" % (base(), org, name, i["number"]),
        "issue_url": "%s/repos/%s/%s/issues/%d" % (api(), org, name, i["number"]),
        "number": i["number"],
        "state": i.get("state", "open"),
        "locked": False,
        "title": i["title"],
        "user": user_obj(i.get("user", "ghost")),
        "body": i.get("body"),
        "created_at": i["created_at"],
        "updated_at": i["updated_at"],
        "closed_at": i.get("closed_at"),
        "merged_at": p.get("merged_at"),
        "merge_commit_sha": p.get("merge_commit_sha"),
        "draft": p.get("draft", False),
        "head": side("head"),
        "base": side("base"),
        "author_association": "MEMBER",
    }


def review_obj(org, name, i, rv):
    rv.setdefault("id", next_id())
    return {
        "id": rv["id"],
        "node_id": "PRR_%d" % rv["id"],
        "user": user_obj(rv.get("user", "ghost")),
        "body": rv.get("body", ""),
        "state": rv.get("state", "COMMENTED"),
        "html_url": "%s/%s/%s/pull/%d#pullrequestreview-%d" % (base(), org, name, i["number"], rv["id"]),
        "commit_id": rv.get("commit_id"),
        "submitted_at": rv.get("submitted_at"),
        "author_association": "MEMBER",
    }


def review_comment_obj(org, name, i, c):
    c.setdefault("id", next_id())
    return {
        "url": "%s/repos/%s/%s/pulls/comments/%d" % (api(), org, name, c["id"]),
        "id": c["id"],
        "node_id": "PRRC_%d" % c["id"],
        "pull_request_review_id": c.get("review_id"),
        "diff_hunk": c.get("diff_hunk", "@@ -1 +1 @@"),
        "path": c.get("path", "README"),
        "position": c.get("position", 1),
        "original_position": c.get("position", 1),
        "commit_id": c.get("commit_id", "0" * 40),
        "original_commit_id": c.get("commit_id", "0" * 40),
        "in_reply_to_id": c.get("in_reply_to_id"),
        "user": user_obj(c.get("user", "ghost")),
        "body": c.get("body", ""),
        "created_at": c["created_at"],
        "updated_at": c.get("updated_at", c["created_at"]),
        "line": c.get("line", 1),
        "original_line": c.get("line", 1),
        "side": "RIGHT",
    }


class NotFound(Exception):
    pass


class Gone(Exception):
    pass


def etag_of(body):
    # why: a body names the fake's own port (URLs), which each test run
    # picks afresh; the ETag must not, so that one recorded from an earlier
    # run (tests/fixtures/github/deltaic-acme.json) still matches
    return 'W/"%s"' % hashlib.sha256(body.replace(base().encode(), b"http://github.invalid")).hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-github/1"

    def log_message(self, fmt, *args):
        if os.environ.get("FAKE_GITHUB_VERBOSE"):
            sys.stderr.write("fake-github: " + (fmt % args) + "\n")

    # ---- plumbing -------------------------------------------------------

    def body_bytes(self):
        # why: read once per request and kept, so that a request answered
        # without looking at its body still leaves the connection clean
        if getattr(self, "_body", None) is None:
            self._body = self.read_body()
        return self._body

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                line = self.rfile.readline().strip()
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline().strip():
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body=b"", headers=None, ctype="application/json; charset=utf-8"):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def record(self, status, auth):
        with LOCK:
            STATE["requests"] += 1
            if status != 304:
                STATE["not_304"] += 1
            STATE["by_status"][str(status)] = STATE["by_status"].get(str(status), 0) + 1
            STATE["log"].append({"method": self.command, "path": self.path, "status": status,
                                 "auth": auth, "inm": self.headers.get("If-None-Match")})

    def rate_headers(self, remaining=None, reset=None):
        with LOCK:
            rem = STATE["remaining"] if remaining is None else remaining
            rst = int(time.time()) + 3600 if reset is None else reset
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(rem),
                "x-ratelimit-reset": str(rst), "x-ratelimit-used": str(5000 - rem),
                "x-ratelimit-resource": "core"}

    def token_ok(self):
        h = self.headers.get("Authorization", "")
        tok = STATE["world"].get("token")
        return h in ("Bearer %s" % tok, "token %s" % tok)

    def basic_ok(self):
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
        except Exception:
            return False
        tok = STATE["world"].get("token")
        return pw == tok or (user == tok and pw in ("", "x-oauth-basic"))

    # ---- dispatch -------------------------------------------------------

    def do_GET(self):
        self.route("GET")

    def do_HEAD(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")

    def do_PUT(self):
        self.route("PUT")

    def route(self, method):
        self._body = None
        self.body_bytes()
        u = urllib.parse.urlsplit(self.path)
        path, q = u.path, urllib.parse.parse_qs(u.query)
        try:
            if path.startswith("/_control/"):
                return self.control(method, path[len("/_control/"):], q)
            if path.startswith("/login/"):
                return self.device(path)
            if path.startswith("/api/v3/") or path == "/api/v3":
                return self.api(method, path[len("/api/v3"):], q, u.query)
            if path.startswith("/api/uploads/"):
                return self.upload(path, q)
            if path.startswith("/lfs-objects/"):
                return self.lfs_object(method, path)
            return self.git(method, path, u.query)
        except BrokenPipeError:
            pass

    # ---- control --------------------------------------------------------

    def control(self, method, what, q):
        if what == "world" and method == "POST":
            with LOCK:
                STATE["world"] = json.loads(self.body_bytes())
                assign_ids(STATE["world"])
            return self.send(200, b"{}")
        if what == "stats":
            with LOCK:
                body = json.dumps({k: STATE[k] for k in
                                   ("requests", "not_304", "by_status", "log", "asset_log")}).encode()
            return self.send(200, body)
        if what == "reset" and method == "POST":
            with LOCK:
                STATE.update(requests=0, not_304=0, by_status={}, log=[], asset_log=[])
            return self.send(200, b"{}")
        if what == "fault" and method == "POST":
            f = json.loads(self.body_bytes())
            with LOCK:
                if f["kind"] == "exhaust":
                    STATE["exhaust_until"] = int(time.time()) + int(f.get("reset_in", 2))
                else:
                    STATE["faults"].append(f)
            return self.send(200, b"{}")
        if what == "mutate" and method == "POST":
            self.mutate(json.loads(self.body_bytes()))
            return self.send(200, b"{}")
        if what == "dump":
            with LOCK:
                r = repo_of(q["org"][0], q["repo"][0])
                body = json.dumps(r).encode()
            return self.send(200 if r is not None else 404, body)
        return self.send(404, b'{"message": "no such control"}')

    def mutate(self, m):
        op = m["op"]
        with LOCK:
            if op == "create_repo":
                o = STATE["world"]["orgs"].setdefault(m["org"], {"repos": {}})
                o.setdefault("repos", {})[m["repo"]] = {"issues": [], "labels": [], "milestones": [],
                                                        "releases": [], "commit_comments": []}
                path = os.path.join(ARGS.git_root, m["org"], m["repo"] + ".git")
                subprocess.run(["git", "init", "-q", "--bare", path], check=True)
                return
            r = repo_of(m["org"], m["repo"])
            if op == "delete_repo":
                del STATE["world"]["orgs"][m["org"]]["repos"][m["repo"]]
            elif op == "comment":
                i = next(x for x in r["issues"] if x["number"] == m["number"])
                t = m.get("at", now_z())
                i.setdefault("comments", []).append({"user": m.get("user", "ann"), "body": m["body"],
                                                     "created_at": t, "updated_at": t})
                i["updated_at"] = t
            elif op == "edit_issue":
                i = next(x for x in r["issues"] if x["number"] == m["number"])
                i.update(m["set"])
            elif op == "release":
                r.setdefault("releases", []).insert(0, m["release"])
            else:
                raise ValueError(op)

    # ---- device flow ----------------------------------------------------

    def device(self, path):
        form = urllib.parse.parse_qs(self.body_bytes().decode())
        self.record(200, False)
        if path == "/login/device/code":
            code = "dev-%d" % next_id()
            with LOCK:
                STATE["device"][code] = 0
            body = {"device_code": code, "user_code": "WDJB-MJHT", "verification_uri":
                    base() + "/login/device", "expires_in": 900, "interval": 1}
            return self.send(200, json.dumps(body).encode())
        if path == "/login/oauth/access_token":
            code = form.get("device_code", [""])[0]
            with LOCK:
                polls = STATE["device"].get(code)
                if polls is None:
                    return self.send(200, b'{"error": "incorrect_device_code"}')
                STATE["device"][code] = polls + 1
            if polls == 0:
                return self.send(200, b'{"error": "authorization_pending"}')
            body = {"access_token": STATE["world"]["token"], "token_type": "bearer",
                    "scope": "repo,read:org"}
            return self.send(200, json.dumps(body).encode())
        return self.send(404, b"{}")

    # ---- the REST API ---------------------------------------------------

    def api(self, method, path, q, query):
        with LOCK:
            exhaust = STATE["exhaust_until"]
            fault = None
            for f in STATE["faults"]:
                if f["kind"] == "secondary" and f["path"] in path and f.get("count", 1) > 0:
                    f["count"] = f.get("count", 1) - 1
                    fault = f
                    break
        if exhaust > time.time():
            self.record(403, True)
            body = b'{"message": "API rate limit exceeded for user.", "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}'
            return self.send(403, body, self.rate_headers(0, exhaust))
        if fault is not None:
            self.record(403, True)
            body = b'{"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}'
            h = self.rate_headers()
            if fault.get("retry_after") is not None:
                h["Retry-After"] = str(fault["retry_after"])
            return self.send(403, body, h)
        if not self.token_ok():
            self.record(401, False)
            return self.send(401, b'{"message": "Bad credentials"}', self.rate_headers())
        try:
            if method == "GET":
                status, value, extra = self.api_get(path, q)
            else:
                payload = json.loads(self.body_bytes() or b"null")
                status, value, extra = self.api_write(method, path, payload)
        except NotFound:
            self.record(404, True)
            return self.send(404, b'{"message": "Not Found"}', self.rate_headers())
        except Gone:
            self.record(410, True)
            return self.send(410, b'{"message": "Issues are disabled for this repo"}', self.rate_headers())
        if status == 302:
            self.record(302, True)
            return self.send(302, b"", dict(self.rate_headers(), Location=value))
        headers = dict(self.rate_headers())
        if method == "GET" and isinstance(value, list):
            value, link = self.paginate(path, q, value)
            if link:
                headers["Link"] = link
        body = json.dumps(value).encode()
        if method == "GET":
            tag = etag_of(body)
            headers["ETag"] = tag
            inm = self.headers.get("If-None-Match")
            if inm and tag in [t.strip() for t in inm.split(",")]:
                self.record(304, True)
                return self.send(304, b"", headers)
        with LOCK:
            STATE["remaining"] = max(STATE["remaining"] - 1, 0)
        headers.update(self.rate_headers())
        headers.update(extra)
        self.record(status, True)
        return self.send(status, body, headers)

    def paginate(self, path, q, items):
        per = min(int(q.get("per_page", ["30"])[0]), 100)
        page = max(int(q.get("page", ["1"])[0]), 1)
        last = max((len(items) + per - 1) // per, 1)
        chunk = items[(page - 1) * per: page * per]

        def url(n):
            qq = {k: v[0] for k, v in q.items()}
            qq["page"] = str(n)
            return "<%s%s?%s>" % (api(), path, urllib.parse.urlencode(qq))

        links = []
        if page < last:
            links.append('%s; rel="next"' % url(page + 1))
            links.append('%s; rel="last"' % url(last))
        if page > 1:
            links.append('%s; rel="first"' % url(1))
            links.append('%s; rel="prev"' % url(page - 1))
        return chunk, ", ".join(links)

    def api_get(self, path, q):
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        w = STATE["world"]
        with LOCK:
            if parts == ["user"]:
                return 200, user_obj(w.get("login", "strata-bot")), {"X-OAuth-Scopes": w.get("scopes", "repo, read:org")}
            if parts == ["rate_limit"]:
                core = {"limit": 5000, "remaining": STATE["remaining"], "reset": int(time.time()) + 3600,
                        "used": 5000 - STATE["remaining"], "resource": "core"}
                return 200, {"resources": {"core": core}, "rate": core}, {}
            if parts == ["user", "orgs"]:
                return 200, [{"login": o, "id": v.get("id", 1), "url": "%s/orgs/%s" % (api(), o)}
                             for o, v in w["orgs"].items()], {}
            if parts[0] == "orgs" and len(parts) >= 2:
                return self.org_get(parts[1], parts[2:], q)
            if parts[0] in ("organizations", "teams"):
                # legacy team URLs: /organizations/{org_id}/team/{id}/... and /teams/{id}/...
                tid = int(parts[3] if parts[0] == "organizations" else parts[1])
                rest = parts[4:] if parts[0] == "organizations" else parts[2:]
                for oname, o in w["orgs"].items():
                    for t in o.get("teams", []):
                        if t.setdefault("id", next_id()) == tid:
                            return self.org_get(oname, ["teams", t["slug"]] + rest, q)
                raise NotFound()
            if parts[0] == "repos" and len(parts) >= 3:
                return self.repo_get(parts[1], parts[2], parts[3:], q)
        raise NotFound()

    def org_get(self, oname, rest, q):
        o = org_of(oname)
        if o is None:
            raise NotFound()
        if rest == []:
            return 200, {"login": oname, "id": o.setdefault("id", next_id()),
                         "url": "%s/orgs/%s" % (api(), oname),
                         "repos_url": "%s/orgs/%s/repos" % (api(), oname), "type": "Organization"}, {}
        if rest == ["repos"]:
            names = sorted(o.get("repos", {}), key=lambda n: o["repos"][n].setdefault("id", next_id()))
            return 200, [repo_obj(oname, n, o["repos"][n]) for n in names], {}
        if rest == ["members"]:
            role = q.get("role", ["all"])[0]
            ms = [m for m in o.get("members", []) if role == "all" or m.get("role", "member") == role]
            return 200, [user_obj(m["login"]) for m in ms], {}
        if rest == ["teams"]:
            return 200, [self.team_obj(oname, o, t) for t in o.get("teams", [])], {}
        if len(rest) >= 2 and rest[0] == "teams":
            t = next((t for t in o.get("teams", []) if t["slug"] == rest[1]), None)
            if t is None:
                raise NotFound()
            if rest[2:] == ["members"]:
                return 200, [user_obj(m) for m in t.get("members", [])], {}
            if rest[2:] == ["repos"]:
                return 200, [repo_obj(oname, n, o["repos"][n]) for n in t.get("repos", [])
                             if n in o.get("repos", {})], {}
            if rest[2:] == []:
                return 200, self.team_obj(oname, o, t), {}
        raise NotFound()

    def team_obj(self, oname, o, t):
        tid = t.setdefault("id", next_id())
        url = "%s/organizations/%d/team/%d" % (api(), o.setdefault("id", next_id()), tid)
        return {"id": tid, "node_id": "T_%d" % tid, "url": url, "name": t["name"], "slug": t["slug"],
                "description": t.get("description"), "privacy": "closed",
                "permission": t.get("permission", "pull"),
                "members_url": url + "/members{/member}", "repositories_url": url + "/repos"}

    def repo_get(self, oname, rname, rest, q):
        r = repo_of(oname, rname)
        if r is None:
            raise NotFound()
        if rest == []:
            return 200, repo_obj(oname, rname, r), {}
        what = rest[0]
        state = q.get("state", ["open"])[0]
        if what == "issues":
            if not r.get("has_issues", True) or r.get("issues_410"):
                raise Gone()
            issues = sorted(r.get("issues", []), key=lambda i: -i["number"])
            if len(rest) == 1:
                return 200, [issue_obj(oname, rname, r, i) for i in issues
                             if state == "all" or i.get("state", "open") == state], {}
            i = next((i for i in issues if str(i["number"]) == rest[1]), None)
            if i is None:
                raise NotFound()
            if len(rest) == 2:
                return 200, issue_obj(oname, rname, r, i), {}
            if rest[2] == "comments":
                return 200, [comment_obj(oname, rname, i, c) for c in i.get("comments", [])], {}
            if rest[2] == "events":
                return 200, [event_obj(oname, rname, e) for e in i.get("events", [])], {}
        if what == "milestones" and len(rest) == 1:
            ms = sorted(r.get("milestones", []), key=lambda m: m["number"])
            return 200, [milestone_obj(oname, rname, r, m) for m in ms
                         if state == "all" or m.get("state", "open") == state], {}
        if what == "comments" and len(rest) == 1:
            return 200, [commit_comment_obj(oname, rname, c) for c in r.get("commit_comments", [])], {}
        if what == "labels" and len(rest) == 1:
            return 200, [label_obj(oname, rname, l) for l in r.get("labels", [])], {}
        if what == "releases":
            if len(rest) == 1:
                return 200, [release_obj(oname, rname, rel) for rel in r.get("releases", [])], {}
            if rest[1] == "assets" and len(rest) == 3:
                for rel in r.get("releases", []):
                    for a in rel.get("assets", []):
                        if str(a.get("id")) == rest[2]:
                            if "application/octet-stream" in self.headers.get("Accept", ""):
                                sig = hashlib.sha256(b"%d" % a["id"]).hexdigest()[:16]
                                return 302, "http://127.0.0.1:%d/assets/%d?sig=%s" % (
                                    ARGS.asset_port, a["id"], sig), {}
                            return 200, asset_obj(oname, rname, rel, a), {}
                raise NotFound()
        if what == "pulls":
            pulls = sorted([i for i in r.get("issues", []) if i.get("pull") is not None],
                           key=lambda i: -i["number"])
            if len(rest) == 1:
                return 200, [pull_obj(oname, rname, r, i) for i in pulls
                             if state == "all" or i.get("state", "open") == state], {}
            i = next((i for i in pulls if str(i["number"]) == rest[1]), None)
            if i is None:
                raise NotFound()
            if len(rest) == 2:
                return 200, pull_obj(oname, rname, r, i), {}
            if rest[2] == "reviews":
                return 200, [review_obj(oname, rname, i, v) for v in i["pull"].get("reviews", [])], {}
            if rest[2] == "comments":
                return 200, [review_comment_obj(oname, rname, i, c)
                             for c in i["pull"].get("review_comments", [])], {}
        raise NotFound()

    def api_write(self, method, path, p):
        parts = [urllib.parse.unquote(x) for x in path.strip("/").split("/")]
        if parts[0] != "repos" or len(parts) < 4:
            raise NotFound()
        oname, rname, rest = parts[1], parts[2], parts[3:]
        t = now_z()
        with LOCK:
            r = repo_of(oname, rname)
            if r is None:
                raise NotFound()
            if rest == ["labels"] and method == "POST":
                if any(l["name"] == p["name"] for l in r.setdefault("labels", [])):
                    return 422, {"message": "Validation Failed",
                                 "errors": [{"resource": "Label", "code": "already_exists", "field": "name"}]}, {}
                l = {"name": p["name"], "color": p.get("color", "ededed"), "description": p.get("description")}
                r["labels"].append(l)
                return 201, label_obj(oname, rname, l), {}
            if len(rest) == 2 and rest[0] == "labels" and method == "PATCH":
                l = next((l for l in r.get("labels", []) if l["name"] == rest[1]), None)
                if l is None:
                    raise NotFound()
                l.update({k: v for k, v in p.items() if k in ("color", "description", "name")})
                return 200, label_obj(oname, rname, l), {}
            if rest == ["milestones"] and method == "POST":
                ms = r.setdefault("milestones", [])
                m = {"number": len(ms) + 1, "title": p["title"], "state": p.get("state", "open"),
                     "description": p.get("description"), "due_on": p.get("due_on"),
                     "creator": STATE["world"].get("login", "strata-bot"), "created_at": t, "updated_at": t}
                ms.append(m)
                return 201, milestone_obj(oname, rname, r, m), {}
            if rest == ["issues"] and method == "POST":
                iss = r.setdefault("issues", [])
                i = {"number": max([x["number"] for x in iss] + [0]) + 1, "title": p["title"],
                     "body": p.get("body"), "labels": p.get("labels", []), "milestone": p.get("milestone"),
                     "user": STATE["world"].get("login", "strata-bot"), "state": "open",
                     "created_at": t, "updated_at": t, "comments": [], "events": []}
                for ln in i["labels"]:
                    if not any(l["name"] == ln for l in r.setdefault("labels", [])):
                        r["labels"].append({"name": ln, "color": "ededed"})
                iss.append(i)
                return 201, issue_obj(oname, rname, r, i), {}
            if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments" and method == "POST":
                i = next((i for i in r.get("issues", []) if str(i["number"]) == rest[1]), None)
                if i is None:
                    raise NotFound()
                c = {"user": STATE["world"].get("login", "strata-bot"), "body": p["body"], "created_at": t,
                     "updated_at": t}
                i.setdefault("comments", []).append(c)
                i["updated_at"] = t
                return 201, comment_obj(oname, rname, i, c), {}
            if len(rest) == 2 and rest[0] == "issues" and method == "PATCH":
                i = next((i for i in r.get("issues", []) if str(i["number"]) == rest[1]), None)
                if i is None:
                    raise NotFound()
                if p.get("state") == "closed" and i.get("state") != "closed":
                    i["closed_at"] = t
                i.update({k: v for k, v in p.items() if k in ("state", "title", "body")})
                i["updated_at"] = t
                return 200, issue_obj(oname, rname, r, i), {}
            if rest == ["releases"] and method == "POST":
                if not p.get("tag_name"):
                    return 422, {"message": "Validation Failed"}, {}
                rel = {"tag_name": p["tag_name"], "name": p.get("name"), "body": p.get("body"),
                       "draft": p.get("draft", False), "prerelease": p.get("prerelease", False),
                       "created_at": t, "published_at": None if p.get("draft") else t, "assets": []}
                r.setdefault("releases", []).insert(0, rel)
                return 201, release_obj(oname, rname, rel), {}
        raise NotFound()

    def upload(self, path, q):
        if not self.token_ok():
            self.record(401, False)
            return self.send(401, b'{"message": "Bad credentials"}')
        m = re.match(r"^/api/uploads/repos/([^/]+)/([^/]+)/releases/(\d+)/assets$", path)
        data = self.body_bytes()
        if m is None or "name" not in q:
            self.record(404, True)
            return self.send(404, b'{"message": "Not Found"}')
        if self.headers.get("Content-Length") is None:
            self.record(411, True)
            return self.send(411, b'{"message": "Content-Length required"}')
        with LOCK:
            r = repo_of(m.group(1), m.group(2))
            rel = next((x for x in (r or {}).get("releases", []) if str(x.get("id")) == m.group(3)), None)
            if rel is None:
                self.record(404, True)
                return self.send(404, b'{"message": "Not Found"}')
            t = now_z()
            a = {"name": q["name"][0], "content_type": self.headers.get("Content-Type"),
                 "data_b64": base64.b64encode(data).decode(), "updated_at": t, "created_at": t}
            rel.setdefault("assets", []).append(a)
            body = json.dumps(asset_obj(m.group(1), m.group(2), rel, a)).encode()
        self.record(201, True)
        return self.send(201, body)

    # ---- git smart HTTP and LFS -----------------------------------------

    def git(self, method, path, query):
        m = re.match(r"^/([^/]+)/([^/]+?)(\.wiki)?(\.git)?(/.*)$", path)
        if m is None:
            self.record(404, False)
            return self.send(404, b"not found", ctype="text/plain")
        org, repo, wiki, _, rest = m.groups()
        disk = "%s%s.git" % (repo, wiki or "")
        with LOCK:
            hang = next((f for f in STATE["faults"] if f["kind"] == "git_hang" and f["path"] in path), None)
        if hang is not None:
            # a server that accepts the request and never answers
            self.record(0, False)
            time.sleep(hang.get("secs", 120))
            return self.send(500, b"", ctype="text/plain")
        if not self.basic_ok():
            self.record(401, False)
            return self.send(401, b"auth required", {"WWW-Authenticate": 'Basic realm="GitHub"',
                                                     "LFS-Authenticate": 'Basic realm="GitHub"'},
                             ctype="text/plain")
        if rest.startswith("/info/lfs/"):
            return self.lfs_batch(org, repo, rest)
        gitdir = os.path.join(ARGS.git_root, org, disk)
        if not os.path.isdir(gitdir):
            self.record(404, True)
            return self.send(404, b"Repository not found.", ctype="text/plain")
        body = self.body_bytes() if method == "POST" else b""
        env = dict(os.environ)
        env.update({
            "GIT_PROJECT_ROOT": ARGS.git_root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": "/%s/%s%s" % (org, disk, rest),
            "QUERY_STRING": query,
            "REQUEST_METHOD": method,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "strata",
            "REMOTE_ADDR": "127.0.0.1",
        })
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                headers[k.strip()] = v.strip()
        ctype = headers.pop("Content-Type", "application/octet-stream")
        self.record(status, True)
        return self.send(status, payload, headers, ctype=ctype)

    def lfs_store(self, oid):
        d = os.path.join(ARGS.git_root, "lfs-store")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, oid)

    def lfs_batch(self, org, repo, rest):
        if rest != "/info/lfs/objects/batch":
            self.record(404, True)
            return self.send(404, b"{}")
        req = json.loads(self.body_bytes())
        objs = []
        for o in req.get("objects", []):
            oid, size = o["oid"], o["size"]
            href = "%s/lfs-objects/%s" % (base(), oid)
            have = os.path.exists(self.lfs_store(oid))
            if req.get("operation") == "upload":
                item = {"oid": oid, "size": size, "authenticated": True}
                if not have:
                    item["actions"] = {"upload": {"href": href, "header": {"Authorization": "RemoteAuth x"}}}
            elif have:
                item = {"oid": oid, "size": size, "authenticated": True,
                        "actions": {"download": {"href": href, "header": {"Authorization": "RemoteAuth x"}}}}
            else:
                item = {"oid": oid, "size": size, "error": {"code": 404, "message": "Object does not exist"}}
            objs.append(item)
        body = json.dumps({"transfer": "basic", "objects": objs}).encode()
        self.record(200, True)
        return self.send(200, body, ctype="application/vnd.git-lfs+json")

    def lfs_object(self, method, path):
        oid = path.rsplit("/", 1)[-1]
        if not re.match(r"^[0-9a-f]{64}$", oid) or self.headers.get("Authorization") != "RemoteAuth x":
            self.record(404, False)
            return self.send(404, b"")
        p = self.lfs_store(oid)
        if method == "PUT":
            data = self.body_bytes()
            if hashlib.sha256(data).hexdigest() != oid:
                self.record(422, True)
                return self.send(422, b"")
            with open(p, "wb") as f:
                f.write(data)
            self.record(200, True)
            return self.send(200, b"")
        if not os.path.exists(p):
            self.record(404, True)
            return self.send(404, b"")
        with open(p, "rb") as f:
            data = f.read()
        self.record(200, True)
        return self.send(200, data, ctype="application/octet-stream")


class AssetHandler(BaseHTTPRequestHandler):
    """The other host release assets are redirected to (GitHub's
    objects.githubusercontent.com): serves by id, logs whether a token came."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        m = re.match(r"^/assets/(\d+)$", u.path)
        with LOCK:
            STATE["asset_log"].append({"path": self.path,
                                       "authorization": self.headers.get("Authorization")})
            data = None
            if m:
                for o in STATE["world"]["orgs"].values():
                    for r in o.get("repos", {}).values():
                        for rel in r.get("releases", []):
                            for a in rel.get("assets", []):
                                if str(a.get("id")) == m.group(1):
                                    data = asset_bytes(a)
        if data is None or "sig=" not in u.query:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--asset-port", type=int, required=True)
    p.add_argument("--git-root", required=True)
    p.add_argument("--world")
    ARGS = p.parse_args()
    if ARGS.world:
        with open(ARGS.world) as f:
            STATE["world"] = json.load(f)
        assign_ids(STATE["world"])
    api_srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    asset_srv = ThreadingHTTPServer(("127.0.0.1", ARGS.asset_port), AssetHandler)
    for s in (api_srv, asset_srv):
        s.daemon_threads = True
    threading.Thread(target=asset_srv.serve_forever, daemon=True).start()
    print("ready", flush=True)
    api_srv.serve_forever()


if __name__ == "__main__":
    main()
