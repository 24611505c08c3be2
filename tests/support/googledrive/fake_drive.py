#!/usr/bin/env python3
"""A fake Google Drive v3 and OAuth 2.0 server for strata's tests.

No Drive emulator exists; this one is built from Google's documented
requests and answers, and refuses what Drive refuses, so that a client bent
to pass against it would fail against Google:

- OAuth (https://developers.google.com/identity/protocols/oauth2/native-app,
  .../limited-input-device): /o/oauth2/v2/auth (approves at once and
  redirects to a loopback redirect_uri with code and state; PKCE required),
  POST /token (authorization_code with code_verifier checked against the
  S256 challenge, refresh_token, the device_code grant with
  authorization_pending / slow_down / access_denied), POST /device/code
  (only the scopes Google allows to that flow).  Access tokens expire after
  `ttl` seconds or `max_uses` requests (a token that expires mid-run).
- Drive v3 (https://developers.google.com/drive/api/reference/rest/v3):
  files.list with q (the subset strata and Deltaic use, anything else is a
  400), spaces (appDataFolder files only with spaces=appDataFolder), fields
  (partial responses: without `fields` only kind/id/name/mimeType), pageSize
  and pageToken; files.get (the `appDataFolder` alias) and alt=media with
  Range (206 / 416); files.create of metadata, uploadType=multipart and
  uploadType=resumable (session URL in Location; chunks must be multiples of
  256 KiB but the last, Content-Range checked, 308 Resume Incomplete with
  Range, status queries with `bytes */N`, 404 for an unknown session);
  files.update of appProperties (null deletes a key; 124 bytes per key+value,
  30 per file); files.delete (a folder with its descendants).
- Faults for the tests: any request kind answered with an injected status
  and Google's error body (403 rateLimitExceeded / userRateLimitExceeded,
  429, 500...), a connection dropped mid-body, and the daily upload cap
  (uploads refused with "User rate limit exceeded." once `cap` bytes are in).

Control API (tests only), JSON in and out:
  POST /_control/client {client_id, client_secret}
  POST /_control/refresh_token {refresh_token, client_id, scopes}
  POST /_control/tokens {ttl, max_uses}          (max_uses null: unlimited)
  POST /_control/fault {op, status, reason, message, count, retry_after,
                        action: "answer"|"drop", after, skip}
       (the next `count` requests of kind `op` after `skip` of them pass)
  POST /_control/upload_cap {bytes}               (null: none)
  POST /_control/page_limit {n}
  POST /_control/seed {name, mimeType, parents, appProperties, createdTime,
                       content_path | content_b64}
  POST /_control/device {user_code, action: "approve"|"deny"}
  POST /_control/expire_sessions {}
  GET  /_control/state  -> files, sessions, counters

Usage: fake_drive.py --dir DIR [--port N]; prints "PORT n" when listening.
"""

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import socket
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK_UNIT = 256 * 1024
FOLDER = "application/vnd.google-apps.folder"
SCOPE_FILE = "https://www.googleapis.com/auth/drive.file"
SCOPE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
SCOPE_APPFOLDER = "https://www.googleapis.com/auth/drive.appfolder"  # Deltaic's (v2 name)
DEVICE_SCOPES = {SCOPE_FILE, SCOPE_APPDATA, "openid", "email", "profile"}
DAILY_CAP_MESSAGE = "User rate limit exceeded."
DEFAULT_FIELDS = ["kind", "id", "name", "mimeType"]
ALL_FIELDS = ["kind", "id", "name", "mimeType", "parents", "size", "createdTime",
              "modifiedTime", "appProperties", "properties", "trashed", "spaces"]


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ApiError(Exception):
    def __init__(self, status, reason, message, domain="global", headers=None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain
        self.headers = headers or {}

    def body(self):
        return {"error": {"code": self.status, "message": self.message,
                          "errors": [{"domain": self.domain, "reason": self.reason,
                                      "message": self.message}]}}


def bad(message, reason="invalid"):
    return ApiError(400, reason, message)


def not_found(fid):
    return ApiError(404, "notFound", "File not found: %s." % fid)


# ---------------------------------------------------------------- q language

def tokenize(q):
    toks = []
    i = 0
    while i < len(q):
        c = q[i]
        if c.isspace():
            i += 1
        elif c == "'":
            i += 1
            s = []
            while True:
                if i >= len(q):
                    raise bad("Invalid Value: unterminated string in q")
                if q[i] == "\\" and i + 1 < len(q):
                    s.append(q[i + 1])
                    i += 2
                elif q[i] == "'":
                    i += 1
                    break
                else:
                    s.append(q[i])
                    i += 1
            toks.append(("str", "".join(s)))
        elif q.startswith("!=", i):
            toks.append(("op", "!="))
            i += 2
        elif c in "={}":
            toks.append(("op", c))
            i += 1
        else:
            j = i
            while j < len(q) and not q[j].isspace() and q[j] not in "={}!'":
                j += 1
            if j == i:
                raise bad("Invalid Value: unexpected %r in q" % c)
            toks.append(("word", q[i:j]))
            i = j
    return toks


def parse_q(q):
    """A list of predicates (all must hold) for the subset of q in use."""
    toks = tokenize(q)
    preds = []
    i = 0

    def expect(kind, value=None):
        nonlocal i
        if i >= len(toks) or toks[i][0] != kind or (value is not None and toks[i][1] != value):
            raise bad("Invalid Value: could not parse q near token %d" % i)
        i += 1
        return toks[i - 1][1]

    while True:
        if i >= len(toks):
            raise bad("Invalid Value: empty clause in q")
        kind, val = toks[i]
        if kind == "str":
            i += 1
            expect("word", "in")
            expect("word", "parents")
            preds.append(("parent", val))
        elif kind == "word" and val in ("name", "mimeType"):
            i += 1
            op = expect("op")
            if op not in ("=", "!="):
                raise bad("Invalid Value: operator %s" % op)
            preds.append((val, op, expect("str")))
        elif kind == "word" and val == "trashed":
            i += 1
            op = expect("op")
            v = expect("word")
            if op not in ("=", "!=") or v not in ("true", "false"):
                raise bad("Invalid Value: trashed")
            preds.append(("trashed", op, v == "true"))
        elif kind == "word" and val == "appProperties":
            i += 1
            expect("word", "has")
            expect("op", "{")
            expect("word", "key")
            expect("op", "=")
            k = expect("str")
            expect("word", "and")
            expect("word", "value")
            expect("op", "=")
            v = expect("str")
            expect("op", "}")
            preds.append(("prop", k, v))
        else:
            raise bad("Invalid Value: the fake does not implement %r in q" % val)
        if i == len(toks):
            return preds
        expect("word", "and")


# ------------------------------------------------------------ fields selector

def parse_fields(spec):
    """'nextPageToken,files(id,name)' -> {'nextPageToken': None, 'files': ['id','name']}."""
    out = {}
    i = 0
    spec = spec.replace(" ", "")
    while i < len(spec):
        j = i
        while j < len(spec) and spec[j] not in ",(":
            j += 1
        name = spec[i:j]
        if not name:
            raise bad("Invalid field selection %s" % spec, "invalidParameter")
        if j < len(spec) and spec[j] == "(":
            k = spec.index(")", j)
            out[name] = spec[j + 1:k].split(",")
            j = k + 1
        else:
            out[name] = None
        i = j + 1
    return out


def select(resource, fields):
    if fields is None or fields == ["*"]:
        return {k: v for k, v in resource.items() if k in ALL_FIELDS}
    for f in fields:
        if f not in ALL_FIELDS:
            raise bad("Invalid field selection %s" % f, "invalidParameter")
    return {k: resource[k] for k in fields if k in resource}


# --------------------------------------------------------------------- state

class State:
    def __init__(self, root):
        self.root = root
        self.blobs = os.path.join(root, "blobs")
        self.sessions_dir = os.path.join(root, "sessions")
        os.makedirs(self.blobs, exist_ok=True)
        os.makedirs(self.sessions_dir, exist_ok=True)
        self.lock = threading.RLock()
        self.appdata = "appdata" + secrets.token_hex(8)
        self.myroot = "root" + secrets.token_hex(8)
        self.files = {}
        for fid, name, space in ((self.appdata, "Application Data", "appDataFolder"),
                                 (self.myroot, "My Drive", "drive")):
            self.files[fid] = {"kind": "drive#file", "id": fid, "name": name, "mimeType": FOLDER,
                               "parents": [], "createdTime": now_rfc3339(),
                               "modifiedTime": now_rfc3339(), "appProperties": {},
                               "properties": {}, "trashed": False, "spaces": [space],
                               "_root": True}
        self.clients = {"test-client": "test-secret"}
        self.refresh = {}
        self.access = {}
        self.ttl = 3600
        self.max_uses = None
        self.codes = {}
        self.devices = {}
        self.sessions = {}
        self.faults = []
        self.cap = None
        self.uploaded = 0
        self.page_limit = None
        self.counters = {"requests": {}, "bytes_received": 0, "bytes_sent": 0,
                         "refreshes": 0, "grants": 0, "mutations": 0,
                         "sessions_started": 0, "unauthorized": 0}

    def count(self, op):
        r = self.counters["requests"]
        r[op] = r.get(op, 0) + 1

    def blob(self, fid):
        return os.path.join(self.blobs, fid)

    def resolve(self, fid):
        if fid == "appDataFolder":
            return self.appdata
        if fid == "root":
            return self.myroot
        return fid

    def space_of(self, fid):
        return self.files[fid]["spaces"][0]

    def new_file(self, meta, size, blob_from=None, created=None):
        parents = meta.get("parents") or ["root"]
        if len(parents) != 1:
            raise bad("A file must have exactly one parent.", "cannotAddParent")
        parent = self.resolve(parents[0])
        if parent not in self.files:
            raise not_found(parents[0])
        if self.files[parent]["mimeType"] != FOLDER:
            raise bad("The parent is not a folder.", "notAFolder")
        props = meta.get("appProperties") or {}
        check_props(props)
        fid = "f" + secrets.token_hex(12)
        f = {"kind": "drive#file", "id": fid, "name": meta.get("name") or "Untitled",
             "mimeType": meta.get("mimeType") or "application/octet-stream",
             "parents": [parent], "createdTime": created or now_rfc3339(),
             "modifiedTime": now_rfc3339(), "appProperties": dict(props),
             "properties": dict(meta.get("properties") or {}), "trashed": False,
             "spaces": [self.space_of(parent)]}
        if f["mimeType"] != FOLDER:
            f["size"] = str(size)
            if blob_from is not None:
                os.replace(blob_from, self.blob(fid))
            else:
                open(self.blob(fid), "wb").close()
        self.files[fid] = f
        self.counters["mutations"] += 1
        return f

    def delete(self, fid):
        children = [c for c, f in self.files.items() if fid in f["parents"]]
        for c in children:
            self.delete(c)
        f = self.files.pop(fid)
        if f["mimeType"] != FOLDER and os.path.exists(self.blob(fid)):
            os.remove(self.blob(fid))

    def take_fault(self, op):
        """The fault for this request of kind `op`, if one is due: each
        pending fault first lets `skip` such requests pass."""
        chosen = None
        for fault in self.faults:
            if fault["op"] != op or fault["count"] <= 0:
                continue
            if fault["skip"] > 0:
                fault["skip"] -= 1
                continue
            if chosen is None:
                fault["count"] -= 1
                chosen = dict(fault)
        return chosen


def check_props(props):
    if len(props) > 30:
        raise bad("The limit of 30 appProperties per file was exceeded.", "appPropertiesLimitExceeded")
    for k, v in props.items():
        if v is None:
            continue
        if len((k + v).encode()) > 124:
            raise bad("The limit for this property (key plus value) is 124 bytes: %s" % k,
                      "invalidAppProperty")


def matches(state, f, preds):
    for p in preds:
        if p[0] == "parent":
            if state.resolve(p[1]) not in f["parents"]:
                return False
        elif p[0] in ("name", "mimeType"):
            eq = f[p[0]] == p[2]
            if eq != (p[1] == "="):
                return False
        elif p[0] == "trashed":
            eq = f["trashed"] == p[2]
            if eq != (p[1] == "="):
                return False
        elif p[0] == "prop":
            if f["appProperties"].get(p[1]) != p[2]:
                return False
    return True


# ------------------------------------------------------------------- handler

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-drive/1"

    def log_message(self, fmt, *args):
        if os.environ.get("FAKE_DRIVE_LOG"):
            sys.stderr.write("fake-drive: " + (fmt % args) + "\n")

    @property
    def st(self):
        return self.server.state

    # -- plumbing

    def body_len(self):
        return int(self.headers.get("Content-Length") or 0)

    def read_body(self, limit=64 << 20):
        n = self.body_len()
        if n > limit:
            self.drain(n)
            raise bad("Request too large")
        return self.rfile.read(n) if n else b""

    def drain(self, n=None):
        n = self.body_len() if n is None else n
        while n > 0:
            got = self.rfile.read(min(n, 1 << 20))
            if not got:
                break
            n -= len(got)

    def send(self, status, obj=None, headers=None, raw=None):
        data = raw if raw is not None else (b"" if obj is None else json.dumps(obj).encode())
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def fail(self, e):
        h = dict(e.headers)
        self.send(e.status, e.body(), h)

    def query(self):
        u = urllib.parse.urlsplit(self.path)
        return u.path, {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}

    def authorize(self):
        """Check the Bearer token (401 when unknown or expired); a token
        with `uses` left counts this request and dies at zero."""
        h = self.headers.get("Authorization", "")
        tok = h[7:] if h.startswith("Bearer ") else None
        with self.st.lock:
            t = self.st.access.get(tok)
            if t is None or t["expires"] < time.time():
                self.st.access.pop(tok, None)
                self.st.counters["unauthorized"] += 1
                # why: the body of the request must not be taken for the next one
                self.drain()
                raise ApiError(401, "authError", "Invalid Credentials")
            if t["uses"] is not None:
                t["uses"] -= 1
                if t["uses"] <= 0:
                    del self.st.access[tok]
            self.scopes = set(t["scopes"])

    def injected(self, op, body_unread=True):
        with self.st.lock:
            f = self.st.take_fault(op)
        if f is None:
            return None
        if f.get("action") == "drop":
            return f
        if body_unread:
            self.drain()
        headers = {}
        if f.get("retry_after") is not None:
            headers["Retry-After"] = str(f["retry_after"])
        raise ApiError(f["status"], f.get("reason", "backendError"),
                       f.get("message", "Backend Error"),
                       domain="usageLimits" if "Limit" in f.get("reason", "") else "global",
                       headers=headers)

    def cap_reached(self, more):
        with self.st.lock:
            return self.st.cap is not None and self.st.uploaded + more > self.st.cap

    def cap_error(self):
        return ApiError(403, "userRateLimitExceeded", DAILY_CAP_MESSAGE, domain="usageLimits")

    # -- dispatch

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def do_PATCH(self):
        self.route("PATCH")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        path, q = self.query()
        try:
            if path.startswith("/_control/"):
                return self.control(method, path[len("/_control/"):])
            if path == "/token" and method == "POST":
                return self.token()
            if path == "/device/code" and method == "POST":
                return self.device_code()
            if path == "/o/oauth2/v2/auth" and method == "GET":
                return self.consent(q)
            if path == "/upload/drive/v3/files":
                if method == "POST" and q.get("uploadType") == "multipart":
                    return self.multipart(q)
                if method == "POST" and q.get("uploadType") == "resumable":
                    return self.resumable_start(q)
                if method == "PUT" and q.get("uploadType") == "resumable" and "upload_id" in q:
                    return self.resumable_put(q)
                self.drain()
                raise bad("Invalid uploadType")
            if path == "/drive/v3/files":
                if method == "GET":
                    return self.list(q)
                if method == "POST":
                    return self.create(q)
            if path.startswith("/drive/v3/files/"):
                fid = urllib.parse.unquote(path[len("/drive/v3/files/"):])
                if method == "GET":
                    return self.get(fid, q)
                if method == "PATCH":
                    return self.update(fid, q)
                if method == "DELETE":
                    return self.remove(fid)
            self.drain()
            raise ApiError(404, "notFound", "Not Found")
        except ApiError as e:
            self.fail(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- OAuth

    def oauth_error(self, status, error, description=""):
        self.send(status, {"error": error, "error_description": description})

    def issue(self, client_id, scopes, refresh=None):
        tok = "ya29." + secrets.token_urlsafe(24)
        with self.st.lock:
            self.st.access[tok] = {"expires": time.time() + self.st.ttl, "uses": self.st.max_uses,
                                   "scopes": scopes, "client_id": client_id}
        out = {"access_token": tok, "expires_in": 3599, "token_type": "Bearer",
               "scope": " ".join(scopes)}
        if refresh:
            out["refresh_token"] = refresh
        return out

    def token(self):
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(self.read_body().decode()).items()}
        with self.st.lock:
            self.st.count("token")
        f = self.injected("token", body_unread=False)
        if f is not None:
            self.close_connection = True
            return
        cid, secret = form.get("client_id"), form.get("client_secret")
        if self.st.clients.get(cid) is None or self.st.clients.get(cid) != secret:
            return self.oauth_error(401, "invalid_client", "The OAuth client was not found.")
        grant = form.get("grant_type")
        if grant == "refresh_token":
            with self.st.lock:
                r = self.st.refresh.get(form.get("refresh_token"))
                if r is None or r["client_id"] != cid:
                    return self.oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
                self.st.counters["refreshes"] += 1
            return self.send(200, self.issue(cid, r["scopes"]))
        if grant == "authorization_code":
            with self.st.lock:
                c = self.st.codes.pop(form.get("code"), None)
            if c is None or c["client_id"] != cid:
                return self.oauth_error(400, "invalid_grant", "Malformed auth code.")
            if form.get("redirect_uri") != c["redirect_uri"]:
                return self.oauth_error(400, "redirect_uri_mismatch", "Bad Request")
            verifier = form.get("code_verifier") or ""
            want = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if want != c["challenge"]:
                return self.oauth_error(400, "invalid_grant", "Invalid code verifier.")
            return self.send(200, self.new_grant(cid, c["scopes"]))
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            with self.st.lock:
                d = self.st.devices.get(form.get("device_code"))
                if d is None or d["client_id"] != cid:
                    return self.oauth_error(400, "invalid_grant", "Bad Request")
                now = time.time()
                if d["state"] == "denied":
                    return self.oauth_error(403, "access_denied", "Forbidden")
                if d["state"] == "pending":
                    # why: Google answers polls faster than `interval` with slow_down
                    too_fast = now - d["last_poll"] < d["interval"] - 0.2
                    d["last_poll"] = now
                    if too_fast:
                        return self.oauth_error(403, "slow_down", "Forbidden")
                    return self.oauth_error(428, "authorization_pending", "Precondition Required")
                del self.st.devices[form.get("device_code")]
            return self.send(200, self.new_grant(cid, d["scopes"]))
        return self.oauth_error(400, "unsupported_grant_type", "Invalid grant_type: %s" % grant)

    def new_grant(self, cid, scopes):
        rt = "1//" + secrets.token_urlsafe(32)
        with self.st.lock:
            self.st.refresh[rt] = {"client_id": cid, "scopes": scopes}
            self.st.counters["grants"] += 1
        return self.issue(cid, scopes, refresh=rt)

    def device_code(self):
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(self.read_body().decode()).items()}
        cid = form.get("client_id")
        if cid not in self.st.clients:
            return self.oauth_error(401, "invalid_client", "The OAuth client was not found.")
        scopes = (form.get("scope") or "").split()
        if not scopes or not set(scopes) <= DEVICE_SCOPES:
            return self.oauth_error(400, "invalid_scope", "Invalid device flow scope: %s" % " ".join(scopes))
        dc = secrets.token_urlsafe(24)
        uc = "%s-%s" % (secrets.token_hex(2).upper(), secrets.token_hex(2).upper())
        with self.st.lock:
            self.st.devices[dc] = {"user_code": uc, "client_id": cid, "scopes": scopes,
                                   "state": "pending", "interval": 1, "last_poll": 0.0}
        self.send(200, {"device_code": dc, "user_code": uc, "expires_in": 1800, "interval": 1,
                        "verification_url": "https://www.google.com/device"})

    def consent(self, q):
        cid = q.get("client_id")
        redirect = q.get("redirect_uri", "")
        if cid not in self.st.clients:
            return self.send(400, raw=b"Error 401: invalid_client")
        u = urllib.parse.urlsplit(redirect)
        if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost", "::1") or not u.port:
            return self.send(400, raw=b"Error 400: redirect_uri_mismatch")
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" \
                or len(q.get("code_challenge", "")) < 43:
            return self.send(400, raw=b"Error 400: invalid_request")
        scopes = q.get("scope", "").split()
        code = "4/" + secrets.token_urlsafe(24)
        with self.st.lock:
            self.st.codes[code] = {"client_id": cid, "redirect_uri": redirect,
                                   "challenge": q["code_challenge"], "scopes": scopes}
        loc = redirect + ("&" if "?" in redirect else "?") + urllib.parse.urlencode(
            {"state": q.get("state", ""), "code": code, "scope": " ".join(scopes)})
        self.send(302, headers={"Location": loc})

    # -- Drive metadata

    def list(self, q):
        self.authorize()
        with self.st.lock:
            self.st.count("list")
        self.injected("list")
        spaces = (q.get("spaces") or "drive").split(",")
        for s in spaces:
            if s not in ("drive", "appDataFolder"):
                raise bad("Invalid Value: spaces", "invalidParameter")
        if "appDataFolder" in spaces:
            self.authorize_scope_appdata()
        preds = parse_q(q["q"]) if q.get("q") else []
        size = int(q.get("pageSize") or 100)
        if not 1 <= size <= 1000:
            raise bad("Invalid value for pageSize", "invalidParameter")
        if self.st.page_limit:
            size = min(size, self.st.page_limit)
        fields = parse_fields(q["fields"]) if q.get("fields") else {"kind": None, "files": None,
                                                                   "nextPageToken": None,
                                                                   "incompleteSearch": None}
        start = int(base64.b64decode(q["pageToken"]).decode()) if q.get("pageToken") else 0
        with self.st.lock:
            hits = [f for f in self.st.files.values()
                    if not f.get("_root") and f["spaces"][0] in spaces and matches(self.st, f, preds)]
            hits.sort(key=lambda f: (f["name"], f["id"]))
        page = hits[start:start + size]
        out = {"kind": "drive#fileList", "incompleteSearch": False}
        inner = fields.get("files")
        out["files"] = [select(f, inner if inner is not None else DEFAULT_FIELDS) for f in page]
        if start + size < len(hits):
            out["nextPageToken"] = base64.b64encode(str(start + size).encode()).decode()
        self.send(200, {k: v for k, v in out.items() if k in fields})

    def authorize_scope_appdata(self):
        if not ({SCOPE_APPDATA, SCOPE_APPFOLDER} & self.scopes):
            raise ApiError(403, "insufficientPermissions",
                           "Request had insufficient authentication scopes.")

    def fields_of(self, q):
        return parse_fields(q["fields"]) if q.get("fields") else None

    def resource(self, f, q):
        fields = self.fields_of(q)
        return select(f, list(fields.keys()) if fields is not None else DEFAULT_FIELDS)

    def get(self, fid, q):
        self.authorize()
        with self.st.lock:
            self.st.count("media" if q.get("alt") == "media" else "get")
            real = self.st.resolve(fid)
            f = self.st.files.get(real)
        if f is None:
            raise not_found(fid)
        if f["spaces"][0] == "appDataFolder":
            self.authorize_scope_appdata()
        if q.get("alt") != "media":
            self.injected("get")
            return self.send(200, self.resource(f, q))
        drop = self.injected("media")
        if f["mimeType"] == FOLDER:
            raise ApiError(403, "fileNotDownloadable", "Only files with binary content can be downloaded.")
        size = int(f["size"])
        rng = self.headers.get("Range")
        start, end, status = 0, size - 1, 200
        if rng:
            if not rng.startswith("bytes="):
                raise ApiError(416, "requestedRangeNotSatisfiable", "Request range not satisfiable")
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = min(int(b), size - 1) if b else size - 1
            if start >= size or start > end:
                raise ApiError(416, "requestedRangeNotSatisfiable", "Request range not satisfiable",
                               headers={"Content-Range": "bytes */%d" % size})
            status = 206
        n = end - start + 1 if size else 0
        self.send_response(status)
        self.send_header("Content-Type", f["mimeType"])
        self.send_header("Content-Length", str(n))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        self.wfile.flush()
        limit = n if drop is None else min(n, drop.get("after", 0))
        with open(self.st.blob(f["id"]), "rb") as fh:
            sent = self.connection.sendfile(fh, start, limit) if limit else 0
        with self.st.lock:
            self.st.counters["bytes_sent"] += sent
        if drop is not None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def create(self, q):
        self.authorize()
        body = self.read_body()
        with self.st.lock:
            self.st.count("create")
        self.injected("create", body_unread=False)
        meta = json.loads(body or b"{}")
        self.check_parent_scope(meta)
        with self.st.lock:
            f = self.st.new_file(meta, 0)
        self.send(200, self.resource(f, q))

    def check_parent_scope(self, meta):
        parents = meta.get("parents") or []
        with self.st.lock:
            ps = [self.st.resolve(p) for p in parents]
            appdata = any(p in self.st.files and self.st.space_of(p) == "appDataFolder" for p in ps)
        if appdata:
            self.authorize_scope_appdata()

    def update(self, fid, q):
        self.authorize()
        body = json.loads(self.read_body() or b"{}")
        with self.st.lock:
            self.st.count("update")
        self.injected("update", body_unread=False)
        with self.st.lock:
            f = self.st.files.get(self.st.resolve(fid))
            if f is None or f.get("_root"):
                raise not_found(fid)
            for k in body:
                if k not in ("appProperties", "properties", "name"):
                    raise ApiError(403, "fieldNotWritable",
                                   "The resource body includes fields which are not directly writable.")
            props = dict(f["appProperties"])
            for k, v in (body.get("appProperties") or {}).items():
                if v is None:
                    props.pop(k, None)
                else:
                    props[k] = v
            check_props(props)
            f["appProperties"] = props
            if "name" in body:
                f["name"] = body["name"]
            f["modifiedTime"] = now_rfc3339()
            self.st.counters["mutations"] += 1
        self.send(200, self.resource(f, q))

    def remove(self, fid):
        self.authorize()
        with self.st.lock:
            self.st.count("delete")
        self.injected("delete")
        with self.st.lock:
            real = self.st.resolve(fid)
            if real not in self.st.files or self.st.files[real].get("_root"):
                raise not_found(fid)
            self.st.delete(real)
            self.st.counters["mutations"] += 1
        self.send(204)

    # -- uploads

    def multipart(self, q):
        self.authorize()
        ctype = self.headers.get("Content-Type", "")
        body = self.read_body()
        with self.st.lock:
            self.st.count("multipart")
        self.injected("multipart", body_unread=False)
        if not ctype.startswith("multipart/related") or "boundary=" not in ctype:
            raise bad("Content-Type must be multipart/related with a boundary", "badContent")
        boundary = ctype.split("boundary=", 1)[1].strip().strip('"').encode()
        parts = body.split(b"--" + boundary)
        # ['', part1, part2, '--\r\n']
        if len(parts) != 4 or not parts[3].startswith(b"--"):
            raise bad("Malformed multipart body", "badContent")
        docs = []
        for p in parts[1:3]:
            head, _, data = p.partition(b"\r\n\r\n")
            if not data.endswith(b"\r\n"):
                raise bad("Malformed multipart body", "badContent")
            docs.append((head, data[:-2]))
        meta = json.loads(docs[0][1])
        media = docs[1][1]
        self.check_parent_scope(meta)
        if self.cap_reached(len(media)):
            raise self.cap_error()
        tmp = os.path.join(self.st.sessions_dir, "mp-" + secrets.token_hex(8))
        with open(tmp, "wb") as fh:
            fh.write(media)
        with self.st.lock:
            self.st.counters["bytes_received"] += len(media)
            self.st.uploaded += len(media)
            f = self.st.new_file(meta, len(media), blob_from=tmp)
        self.send(200, self.resource(f, q))

    def resumable_start(self, q):
        self.authorize()
        body = self.read_body()
        with self.st.lock:
            self.st.count("resumable_start")
        self.injected("resumable_start", body_unread=False)
        if self.cap_reached(0) or (self.st.cap is not None and self.st.uploaded >= self.st.cap):
            raise self.cap_error()
        meta = json.loads(body or b"{}")
        self.check_parent_scope(meta)
        parents = meta.get("parents") or ["root"]
        with self.st.lock:
            if self.st.resolve(parents[0]) not in self.st.files:
                raise not_found(parents[0])
        total = self.headers.get("X-Upload-Content-Length")
        sid = secrets.token_urlsafe(18)
        path = os.path.join(self.st.sessions_dir, sid)
        open(path, "wb").close()
        with self.st.lock:
            self.st.sessions[sid] = {"meta": meta, "total": int(total) if total else None,
                                     "received": 0, "bytes_in": 0, "puts": 0, "path": path,
                                     "file": None, "fields": q.get("fields")}
            self.st.counters["sessions_started"] += 1
        host = self.headers.get("Host")
        loc = "http://%s/upload/drive/v3/files?uploadType=resumable&upload_id=%s" % (host, sid)
        self.send(200, headers={"Location": loc})

    def resumable_put(self, q):
        self.authorize()
        sid = q["upload_id"]
        with self.st.lock:
            s = self.st.sessions.get(sid)
        n = self.body_len()
        cr = self.headers.get("Content-Range", "")
        if s is None:
            self.drain()
            raise ApiError(404, "notFound", "Not Found")
        if not cr.startswith("bytes "):
            self.drain()
            raise bad("Invalid Content-Range header")
        rng, _, total = cr[6:].partition("/")
        if total == "*" or not total.isdigit():
            self.drain()
            raise bad("The fake needs the total size in Content-Range")
        total = int(total)
        if s["total"] is not None and total != s["total"]:
            self.drain()
            raise bad("Content-Range total %d differs from X-Upload-Content-Length %d" % (total, s["total"]))
        s["total"] = total
        if rng == "*":
            with self.st.lock:
                self.st.count("status")
            self.drain()
            self.injected("status", body_unread=False)
            return self.session_answer(s, q)
        with self.st.lock:
            self.st.count("chunk")
        if s["file"] is not None:
            self.drain()
            return self.session_answer(s, q)
        a, _, b = rng.partition("-")
        a, b = int(a), int(b)
        if b - a + 1 != n or b >= total:
            self.drain()
            raise bad("Content-Range %s does not match Content-Length %d" % (cr, n))
        final = b == total - 1
        if not final and n % CHUNK_UNIT:
            self.drain()
            raise bad("Invalid request.  The number of bytes uploaded is required to be equal or "
                      "greater than 262144, except for the final request (it's recommended to be "
                      "the exact multiple of 262144).  The received request contained %d bytes, "
                      "which does not meet this requirement." % n)
        if a > s["received"]:
            self.drain()
            raise bad("Content-Range starts at %d but the session holds %d bytes" % (a, s["received"]))
        drop = self.injected("chunk")
        if self.cap_reached(n):
            self.drain()
            raise self.cap_error()
        skip = s["received"] - a
        left = n
        got = 0
        limit = n if drop is None else min(n, drop.get("after", 0))
        with open(s["path"], "r+b") as fh:
            fh.seek(s["received"])
            while left > 0 and got < limit:
                buf = self.rfile.read(min(left, 1 << 20, limit - got))
                if not buf:
                    break
                left -= len(buf)
                got += len(buf)
                if skip:
                    cut = min(skip, len(buf))
                    buf = buf[cut:]
                    skip -= cut
                fh.write(buf)
        with self.st.lock:
            self.st.counters["bytes_received"] += got
            self.st.uploaded += got
            s["bytes_in"] += got
            s["puts"] += 1
        if drop is not None or left > 0:
            # why: what a dropped connection leaves: whole 256 KiB units persist, the rest is lost
            with self.st.lock:
                s["received"] = ((a + got) // CHUNK_UNIT) * CHUNK_UNIT if a + got < total else total
                if s["received"] < a:
                    s["received"] = max(a, s["received"])
            os.truncate(s["path"], s["received"])
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        with self.st.lock:
            s["received"] = max(s["received"], b + 1)
        return self.session_answer(s, q)

    def session_answer(self, s, q):
        with self.st.lock:
            if s["file"] is None and s["total"] is not None and s["received"] == s["total"]:
                f = self.st.new_file(s["meta"], s["total"], blob_from=s["path"])
                s["file"] = f["id"]
            fid = s["file"]
            f = self.st.files.get(fid) if fid else None
        if fid is not None:
            if f is None:
                raise ApiError(404, "notFound", "Not Found")
            fields = parse_fields(s["fields"]) if s["fields"] else None
            return self.send(200, select(f, list(fields.keys()) if fields else DEFAULT_FIELDS))
        headers = {}
        if s["received"] > 0:
            headers["Range"] = "bytes=0-%d" % (s["received"] - 1)
        self.send(308, headers=headers)

    # -- control

    def control(self, method, what):
        body = json.loads(self.read_body() or b"{}") if method != "GET" else {}
        st = self.st
        with st.lock:
            if what == "state" and method == "GET":
                files = [{k: v for k, v in f.items() if not k.startswith("_")}
                         for f in st.files.values() if not f.get("_root")]
                sessions = {k: {kk: vv for kk, vv in v.items() if kk not in ("path", "meta")}
                            for k, v in st.sessions.items()}
                return self.send(200, {"files": files, "sessions": sessions,
                                       "counters": st.counters, "appdata_id": st.appdata,
                                       "uploaded": st.uploaded})
            if what == "client":
                st.clients[body["client_id"]] = body["client_secret"]
            elif what == "refresh_token":
                st.refresh[body["refresh_token"]] = {"client_id": body["client_id"],
                                                     "scopes": body.get("scopes") or [SCOPE_APPFOLDER, SCOPE_FILE]}
            elif what == "tokens":
                st.ttl = body.get("ttl", st.ttl)
                st.max_uses = body.get("max_uses")
                if body.get("revoke_all"):
                    st.access.clear()
            elif what == "fault":
                st.faults.append({"op": body["op"], "status": body.get("status", 500),
                                  "reason": body.get("reason", "backendError"),
                                  "message": body.get("message", "Backend Error"),
                                  "count": body.get("count", 1),
                                  "retry_after": body.get("retry_after"),
                                  "action": body.get("action", "answer"),
                                  "after": body.get("after", 0),
                                  "skip": body.get("skip", 0)})
            elif what == "clear_faults":
                st.faults = []
            elif what == "upload_cap":
                st.cap = body.get("bytes")
                if body.get("reset_day"):
                    st.uploaded = 0
            elif what == "page_limit":
                st.page_limit = body.get("n")
            elif what == "expire_sessions":
                for s in st.sessions.values():
                    if os.path.exists(s["path"]):
                        os.remove(s["path"])
                st.sessions.clear()
            elif what == "device":
                for d in st.devices.values():
                    if d["user_code"] == body["user_code"]:
                        d["state"] = "approved" if body.get("action", "approve") == "approve" else "denied"
                        break
                else:
                    return self.send(404, {"error": "no such user code"})
            elif what == "seed":
                meta = {"name": body["name"], "mimeType": body.get("mimeType") or "application/octet-stream",
                        "parents": body.get("parents") or ["appDataFolder"],
                        "appProperties": body.get("appProperties") or {}}
                tmp = None
                size = 0
                if meta["mimeType"] != FOLDER:
                    tmp = os.path.join(st.sessions_dir, "seed-" + secrets.token_hex(8))
                    if body.get("content_path"):
                        shutil.copyfile(body["content_path"], tmp)
                    else:
                        with open(tmp, "wb") as fh:
                            fh.write(base64.b64decode(body.get("content_b64") or ""))
                    size = os.path.getsize(tmp)
                f = st.new_file(meta, size, blob_from=tmp, created=body.get("createdTime"))
                st.counters["mutations"] -= 1
                return self.send(200, {k: v for k, v in f.items() if not k.startswith("_")})
            else:
                return self.send(404, {"error": "unknown control " + what})
        self.send(200, {"ok": True})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args.dir)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
