#!/usr/bin/env python3
"""A stateful fake of Amazon Glacier (vault API) and Amazon SimpleDB for
strata's tests, built from the services' documented behaviour: what no local
server implements (moto lacks Glacier multipart uploads and byte ranges, and
SimpleDB select, conditional puts and batch deletes).

Standard library only. One HTTP server on 127.0.0.1 serves both:
- SimpleDB: POST / (form body) or GET /?Action=..., Signature Version 2
  (HmacSHA256 or HmacSHA1) verified against the configured secret; XML
  answers and errors as SimpleDB sends them.
- Glacier: the REST API under /<account>/vaults/..., Signature Version 4
  verified (scope service `glacier`), `x-amz-glacier-version` required;
  JSON answers and errors ({"code", "message", "type"} with
  x-amzn-ErrorType).
- /_control/...: unauthenticated test controls (state, configuration,
  faults); see Control below.

Refused as AWS refuses them: a wrong or unknown signature, an expired
timestamp, a part or archive whose SHA-256 tree hash or content hash does
not match, parts that are not the upload's part size or not aligned to it,
a retrieval range that is not megabyte aligned, output of an unfinished
job, a conditional put whose condition fails, more than 25 items in a batch.

Data lives under --data (archives as files); the rest in memory.

Usage: fake_aws.py --data DIR [--port 0] [--access-key K] [--secret S]
                   [--region us-east-1]
Prints "listening <port>" on stdout once ready.
"""

import argparse
import base64
import copy
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MIB = 1 << 20
SDB_NS = "http://sdb.amazonaws.com/doc/2009-04-15/"
SKEW = 15 * 60  # seconds a request's timestamp may be off


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def aws_quote(s):
    return urllib.parse.quote(s, safe="-_.~")


def tree_combine(hashes):
    if not hashes:
        return hashlib.sha256(b"").digest()
    level = list(hashes)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            if i + 1 < len(level):
                nxt.append(hashlib.sha256(level[i] + level[i + 1]).digest())
            else:
                nxt.append(level[i])
        level = nxt
    return level[0]


class TreeHasher:
    """SHA-256 tree hash over 1 MiB leaves, fed in pieces; also the linear
    SHA-256."""

    def __init__(self):
        self.leaves = []
        self.cur = hashlib.sha256()
        self.in_leaf = 0
        self.linear = hashlib.sha256()
        self.total = 0

    def update(self, data):
        self.linear.update(data)
        self.total += len(data)
        view = memoryview(data)
        while len(view):
            take = min(MIB - self.in_leaf, len(view))
            self.cur.update(view[:take])
            self.in_leaf += take
            view = view[take:]
            if self.in_leaf == MIB:
                self.leaves.append(self.cur.digest())
                self.cur = hashlib.sha256()
                self.in_leaf = 0

    def tree(self):
        leaves = list(self.leaves)
        if self.in_leaf or not leaves:
            leaves.append(self.cur.digest())
        return tree_combine(leaves)


def hash_file_range(path, start, length):
    h = TreeHasher()
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left:
            b = f.read(min(left, 4 * MIB))
            if not b:
                break
            h.update(b)
            left -= len(b)
    return h


def tree_aligned(start, end_excl, size):
    """Whether [start, end_excl) is a node of the tree of an archive of
    `size` bytes."""
    if start % MIB:
        return False
    node = MIB
    while True:
        if start % node:
            return False
        if min(start + node, size) == end_excl:
            return True
        if start + node >= size or node > size:
            return False
        node *= 2


class AwsError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------
# SimpleDB select expressions


class SelectSyntax(Exception):
    pass


TOKEN = re.compile(r"""
    \s*(?:
      (?P<bq>`(?:[^`]|``)*`)
    | (?P<dq>"(?:[^"]|"")*")
    | (?P<sq>'(?:[^']|'')*')
    | (?P<op><=|>=|!=|=|<|>)
    | (?P<punct>[(),*])
    | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
    | (?P<num>[0-9]+)
    )""", re.VERBOSE)


def tokenize(text):
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SelectSyntax("unexpected %r" % text[pos:pos + 10])
        pos = m.end()
        kind = m.lastgroup
        v = m.group(kind)
        if kind == "bq":
            out.append(("name", v[1:-1].replace("``", "`")))
        elif kind in ("dq", "sq"):
            q = v[0]
            out.append(("str", v[1:-1].replace(q + q, q)))
        elif kind == "word":
            out.append(("word", v))
        else:
            out.append((kind, v))
    return out


class Select:
    """select OUTPUT from DOMAIN [where EXPR] [order by ATTR [asc|desc]]
    [limit N]"""

    def __init__(self, text):
        self.toks = tokenize(text)
        self.i = 0
        self.expect_word("select")
        self.output = self.parse_output()
        self.expect_word("from")
        kind, v = self.next()
        if kind not in ("name", "word"):
            raise SelectSyntax("a domain name after from")
        self.domain = v
        self.where = None
        self.order = None
        self.limit = None
        if self.peek_word("where"):
            self.next()
            self.where = self.parse_or()
        if self.peek_word("order"):
            self.next()
            self.expect_word("by")
            attr = self.parse_attr()
            desc = False
            if self.peek_word("asc"):
                self.next()
            elif self.peek_word("desc"):
                self.next()
                desc = True
            self.order = (attr, desc)
        if self.peek_word("limit"):
            self.next()
            kind, v = self.next()
            if kind != "num" or not 1 <= int(v) <= 2500:
                raise SelectSyntax("limit must be 1 to 2500")
            self.limit = int(v)
        if self.i != len(self.toks):
            raise SelectSyntax("trailing %r" % (self.toks[self.i][1],))

    def next(self):
        if self.i >= len(self.toks):
            raise SelectSyntax("unexpected end")
        t = self.toks[self.i]
        self.i += 1
        return t

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def peek_word(self, w):
        k, v = self.peek()
        return k == "word" and v.lower() == w

    def expect_word(self, w):
        k, v = self.next()
        if k != "word" or v.lower() != w:
            raise SelectSyntax("expected %s, found %r" % (w, v))

    def expect(self, kind, v=None):
        k, got = self.next()
        if k != kind or (v is not None and got != v):
            raise SelectSyntax("expected %r, found %r" % (v or kind, got))

    def parse_output(self):
        if self.peek() == ("punct", "*"):
            self.next()
            return "*"
        if self.peek_word("count"):
            self.next()
            self.expect("punct", "(")
            self.expect("punct", "*")
            self.expect("punct", ")")
            return "count"
        names = [self.parse_attr()]
        while self.peek() == ("punct", ","):
            self.next()
            names.append(self.parse_attr())
        return names

    def parse_attr(self):
        k, v = self.next()
        if k == "word" and v.lower() == "itemname":
            self.expect("punct", "(")
            self.expect("punct", ")")
            return ("item",)
        if k in ("name", "word"):
            return ("attr", v)
        raise SelectSyntax("expected an attribute, found %r" % (v,))

    def parse_or(self):
        left = self.parse_and()
        while self.peek_word("or"):
            self.next()
            left = ("or", left, self.parse_and())
        return left

    def parse_and(self):
        left = self.parse_not()
        while self.peek_word("and") or self.peek_word("intersection"):
            self.next()
            left = ("and", left, self.parse_not())
        return left

    def parse_not(self):
        if self.peek_word("not"):
            self.next()
            return ("not", self.parse_not())
        if self.peek() == ("punct", "("):
            self.next()
            e = self.parse_or()
            self.expect("punct", ")")
            return e
        return self.parse_pred()

    def value(self):
        k, v = self.next()
        if k not in ("str", "num"):
            raise SelectSyntax("expected a quoted value, found %r" % (v,))
        return v

    def parse_pred(self):
        every = False
        if self.peek_word("every"):
            self.next()
            self.expect("punct", "(")
            attr = self.parse_attr()
            self.expect("punct", ")")
            every = True
        else:
            attr = self.parse_attr()
        k, v = self.peek()
        if k == "op":
            self.next()
            return ("cmp", attr, v, self.value(), every)
        if self.peek_word("is"):
            self.next()
            neg = False
            if self.peek_word("not"):
                self.next()
                neg = True
            self.expect_word("null")
            return ("notnull" if neg else "null", attr)
        if self.peek_word("like"):
            self.next()
            return ("like", attr, self.value(), False)
        if self.peek_word("not"):
            self.next()
            self.expect_word("like")
            return ("like", attr, self.value(), True)
        if self.peek_word("between"):
            self.next()
            lo = self.value()
            self.expect_word("and")
            return ("between", attr, lo, self.value())
        if self.peek_word("in"):
            self.next()
            self.expect("punct", "(")
            vals = [self.value()]
            while self.peek() == ("punct", ","):
                self.next()
                vals.append(self.value())
            self.expect("punct", ")")
            return ("in", attr, vals)
        raise SelectSyntax("expected a comparison after %r" % (attr,))


def values_of(name, attrs, attr):
    if attr == ("item",):
        return [name]
    return [v for (n, v) in attrs if n == attr[1]]


def like(pattern, value):
    rx = "^" + "".join(".*" if c == "%" else re.escape(c) for c in pattern) + "$"
    return re.match(rx, value, re.S) is not None


OPS = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def matches(e, name, attrs):
    kind = e[0]
    if kind == "or":
        return matches(e[1], name, attrs) or matches(e[2], name, attrs)
    if kind == "and":
        return matches(e[1], name, attrs) and matches(e[2], name, attrs)
    if kind == "not":
        return not matches(e[1], name, attrs)
    vals = values_of(name, attrs, e[1])
    if kind == "null":
        return not vals
    if kind == "notnull":
        return bool(vals)
    if kind == "cmp":
        _, _, op, v, every = e
        test = [OPS[op](x, v) for x in vals]
        return bool(test) and (all(test) if every else any(test))
    if kind == "like":
        _, _, pat, neg = e
        hit = any(like(pat, x) for x in vals)
        return bool(vals) and (not hit if neg else hit)
    if kind == "between":
        return any(e[2] <= x <= e[3] for x in vals)
    if kind == "in":
        return any(x in e[2] for x in vals)
    raise SelectSyntax(kind)


# ---------------------------------------------------------------------------
# State


class State:
    def __init__(self, data, keys, region):
        self.lock = threading.RLock()
        self.data = data
        self.keys = keys
        self.region = region
        self.domains = {}  # name -> {item: [(attr, value)]}
        self.eventual = {}
        self.eventual_at = time.time()
        self.vaults = {}  # name -> {"archives", "uploads", "jobs", "created"}
        self.config = {
            "job_delay": 0.5,       # seconds until a job completes
            "page_size": 100,       # select's default page
            "eventual_lag": 0.0,    # seconds an eventually consistent read may lag
            "job_ttl": 24 * 3600.0,  # seconds job output stays after completion
        }
        self.faults = []  # [{"op", "count", "status", "code"}]
        self.corrupt_outputs = 0
        self.counters = {}
        self.job_log = []
        self.requests = []

    def count(self, op):
        with self.lock:
            self.counters[op] = self.counters.get(op, 0) + 1

    def fault_for(self, op):
        with self.lock:
            for f in self.faults:
                if f["op"] == op and f["count"] > 0:
                    f["count"] -= 1
                    return f
        return None

    def secret(self, key):
        return self.keys.get(key)

    def view(self, consistent):
        """The domains as a read sees them: the current state, or (not
        consistent) a copy up to eventual_lag seconds old."""
        with self.lock:
            if consistent:
                return self.domains
            now = time.time()
            if now - self.eventual_at >= self.config["eventual_lag"]:
                self.eventual = copy.deepcopy(self.domains)
                self.eventual_at = now
            return self.eventual


# ---------------------------------------------------------------------------
# HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-aws"

    def log_message(self, fmt, *args):
        if os.environ.get("FAKE_AWS_LOG"):
            sys.stderr.write("fake_aws: " + (fmt % args) + "\n")

    @property
    def st(self):
        return self.server.state

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def send(self, status, body=b"", headers=None, ctype=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def read_body(self, sink=None):
        """Read the request body (into `sink(chunk)` when given)."""
        n = int(self.headers.get("Content-Length") or 0)
        if sink is None:
            return self.rfile.read(n) if n else b""
        while n:
            b = self.rfile.read(min(n, MIB))
            if not b:
                raise AwsError(400, "IncompleteBody", "the body ended early")
            sink(b)
            n -= len(b)
        return None

    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path.startswith("/_control/"):
                return self.control(method, url)
            if re.match(r"^/[^/]+/vaults(/|$)", url.path):
                return self.glacier(method, url)
            if url.path in ("/", ""):
                return self.simpledb(method, url)
            raise AwsError(404, "UnknownOperationException", "no such path")
        except AwsError as e:
            if url.path.startswith("/") and re.match(r"^/[^/]+/vaults", url.path):
                self.glacier_error(e)
            else:
                self.sdb_error(e)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- control -----------------------------------------------------------

    def control(self, method, url):
        st = self.st
        what = url.path[len("/_control/"):]
        body = self.read_body() if method == "POST" else b""
        req = json.loads(body or b"{}")
        with st.lock:
            if what == "state":
                out = {
                    "counters": st.counters,
                    "jobs": st.job_log,
                    "config": st.config,
                    "domains": {d: {i: a for i, a in items.items()}
                                for d, items in st.domains.items()},
                    "vaults": {
                        v: {
                            "archives": [
                                {"id": aid, "size": a["size"],
                                 "description": a["description"],
                                 "created": a["created"],
                                 "tree_hash": a["tree_hash"]}
                                for aid, a in vault["archives"].items()],
                            "uploads": [
                                {"id": uid, "description": u["description"],
                                 "parts": len(u["parts"])}
                                for uid, u in vault["uploads"].items()],
                        } for v, vault in st.vaults.items()},
                }
                return self.send(200, json.dumps(out).encode(), ctype="application/json")
            if what == "config":
                for k, v in req.items():
                    if k not in st.config:
                        raise AwsError(400, "BadControl", "unknown setting " + k)
                    st.config[k] = float(v)
            elif what == "fail":
                # {"op": "UploadMultipartPart", "count": 1, "status": 500, "code": "ServiceUnavailableException"}
                st.faults.append({"op": req["op"], "count": int(req.get("count", 1)),
                                  "status": int(req.get("status", 500)),
                                  "code": req.get("code", "ServiceUnavailableException")})
            elif what == "corrupt-job-output":
                st.corrupt_outputs += int(req.get("count", 1))
            elif what == "expire-jobs":
                for vault in st.vaults.values():
                    vault["jobs"].clear()
            elif what == "age-uploads":
                # make every unfinished upload look `seconds` older
                for vault in st.vaults.values():
                    for u in vault["uploads"].values():
                        u["created"] -= float(req.get("seconds", 0))
            else:
                raise AwsError(404, "BadControl", "unknown control " + what)
        self.send(200, b"{}", ctype="application/json")

    # -- SimpleDB ----------------------------------------------------------

    def sdb_error(self, e):
        body = ('<?xml version="1.0"?>\n<Response><Errors><Error><Code>%s</Code>'
                "<Message>%s</Message><BoxUsage>0.0000219907</BoxUsage></Error></Errors>"
                "<RequestID>%s</RequestID></Response>" % (
                    e.code, xml_escape(e.message), secrets.token_hex(8)))
        self.send(e.status, body.encode(), ctype="text/xml")

    def sdb_reply(self, action, inner=""):
        body = ('<?xml version="1.0"?>\n<%sResponse xmlns="%s">%s<ResponseMetadata>'
                "<RequestId>%s</RequestId><BoxUsage>0.0000219907</BoxUsage>"
                "</ResponseMetadata></%sResponse>" % (
                    action, SDB_NS, inner, secrets.token_hex(8), action))
        self.send(200, body.encode(), ctype="text/xml")

    def simpledb(self, method, url):
        if method == "POST":
            raw = self.read_body().decode("utf-8")
        elif method == "GET":
            raw = url.query
        else:
            raise AwsError(400, "InvalidHttpRequest", "SimpleDB takes GET or POST")
        pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True, strict_parsing=False)
        params = {}
        for k, v in pairs:
            if k in params:
                raise AwsError(400, "InvalidParameterValue", "parameter %s given twice" % k)
            params[k] = v
        self.verify_v2(method, url, params)
        action = params.get("Action", "")
        self.st.count(action)
        fault = self.st.fault_for(action)
        if fault:
            raise AwsError(fault["status"], fault["code"], "injected fault")
        handler = getattr(self, "sdb_" + action, None)
        if handler is None:
            raise AwsError(400, "InvalidAction", "The action %s is not valid for this web service." % action)
        with self.st.lock:
            return handler(params)

    def verify_v2(self, method, url, params):
        sig = params.pop("Signature", None)
        key = params.get("AWSAccessKeyId")
        if sig is None or key is None:
            raise AwsError(403, "AuthMissingFailure", "AWS was not able to authenticate the request: access credentials are missing")
        if params.get("SignatureVersion") != "2":
            raise AwsError(403, "InvalidParameterValue", "Value (%s) for parameter SignatureVersion is invalid." % params.get("SignatureVersion"))
        algo = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}.get(params.get("SignatureMethod"))
        if algo is None:
            raise AwsError(403, "InvalidParameterValue", "Value (%s) for parameter SignatureMethod is invalid." % params.get("SignatureMethod"))
        secret = self.st.secret(key)
        if secret is None:
            raise AwsError(403, "InvalidClientTokenId", "The AWS Access Key Id you provided does not exist in our records.")
        stamp = params.get("Timestamp")
        expires = params.get("Expires")
        now = time.time()
        try:
            if stamp:
                t = datetime.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                if abs(now - t) > SKEW:
                    raise AwsError(403, "RequestExpired", "Request has expired. Timestamp date is %s" % stamp)
            elif expires:
                t = datetime.datetime.strptime(expires[:19], "%Y-%m-%dT%H:%M:%S").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                if now > t:
                    raise AwsError(403, "RequestExpired", "Request has expired.")
            else:
                raise AwsError(400, "MissingParameter", "Timestamp or Expires is required")
        except ValueError:
            raise AwsError(400, "InvalidParameterValue", "bad Timestamp %r" % stamp)
        host = (self.headers.get("Host") or "").lower()
        path = url.path or "/"
        canonical = "&".join("%s=%s" % (aws_quote(k), aws_quote(v))
                             for k, v in sorted(params.items(), key=lambda kv: kv[0].encode()))
        to_sign = "%s\n%s\n%s\n%s" % (method, host, path, canonical)
        want = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), algo).digest()).decode()
        if not hmac.compare_digest(want, sig):
            raise AwsError(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature you provided.")

    def domain(self, params, consistent=True):
        name = params.get("DomainName")
        if not name:
            raise AwsError(400, "MissingParameter", "The request must contain the parameter DomainName")
        view = self.st.view(consistent)
        if name not in view:
            if name in self.st.domains:
                # created too recently for an eventually consistent read
                return {}
            raise AwsError(400, "NoSuchDomain", "The specified domain does not exist.")
        return view[name]

    def sdb_CreateDomain(self, p):
        name = p.get("DomainName", "")
        if not re.match(r"^[A-Za-z0-9_.\-]{3,255}$", name):
            raise AwsError(400, "InvalidParameterValue", "Value (%s) for parameter DomainName is invalid." % name)
        self.st.domains.setdefault(name, {})
        self.sdb_reply("CreateDomain")

    def sdb_DeleteDomain(self, p):
        self.st.domains.pop(p.get("DomainName"), None)
        self.sdb_reply("DeleteDomain")

    def sdb_ListDomains(self, p):
        inner = "".join("<DomainName>%s</DomainName>" % xml_escape(d) for d in sorted(self.st.domains))
        self.sdb_reply("ListDomains", "<ListDomainsResult>%s</ListDomainsResult>" % inner)

    @staticmethod
    def indexed(p, prefix):
        """{n: {field: value}} of parameters `prefix.n.field`."""
        out = {}
        rx = re.compile(r"^%s\.(\d+)\.(.+)$" % re.escape(prefix))
        for k, v in p.items():
            m = rx.match(k)
            if m:
                out.setdefault(int(m.group(1)), {})[m.group(2)] = v
        return out

    def check_expected(self, p, attrs):
        exp = self.indexed(p, "Expected")
        # why: boto (Deltaic) sends Expected.1.Name, botocore's model Expected.Name; SimpleDB takes both
        flat = {k[len("Expected."):]: v for k, v in p.items()
                if k in ("Expected.Name", "Expected.Value", "Expected.Exists")}
        if flat:
            if exp:
                raise AwsError(400, "InvalidParameterValue", "Expected given twice")
            exp = {1: flat}
        if len(exp) > 1:
            raise AwsError(400, "InvalidParameterValue", "only one Expected condition is allowed")
        for cond in exp.values():
            name = cond.get("Name")
            if not name:
                raise AwsError(400, "MissingParameter", "Expected.1.Name is required")
            exists = cond.get("Exists", "true").lower()
            have = [v for (n, v) in attrs if n == name]
            if exists == "false":
                if "Value" in cond:
                    raise AwsError(400, "IncompleteExpectedExpression", "Exists=false takes no Value")
                if have:
                    raise AwsError(409, "ConditionalCheckFailed",
                                   "Conditional check failed. Attribute (%s) value exists" % name)
            else:
                if "Value" not in cond:
                    raise AwsError(400, "IncompleteExpectedExpression", "Expected.1.Value is required")
                if not have:
                    raise AwsError(404, "AttributeDoesNotExist", "Attribute (%s) does not exist" % name)
                if len(have) > 1:
                    raise AwsError(409, "MultiValuedAttribute", "Attribute (%s) has multiple values" % name)
                if have[0] != cond["Value"]:
                    raise AwsError(409, "ConditionalCheckFailed",
                                   "Conditional check failed. Attribute (%s) value is (%s) but was expected (%s)"
                                   % (name, have[0], cond["Value"]))

    @staticmethod
    def apply_put(attrs, new):
        """new: {n: {Name, Value, Replace}}"""
        out = list(attrs)
        replaced = {a["Name"] for a in new.values() if a.get("Replace", "false").lower() == "true"}
        out = [(n, v) for (n, v) in out if n not in replaced]
        for i in sorted(new):
            a = new[i]
            if "Name" not in a or "Value" not in a:
                raise AwsError(400, "MissingParameter", "Attribute.%d needs a Name and a Value" % i)
            if len(a["Name"].encode()) > 1024 or len(a["Value"].encode()) > 1024:
                raise AwsError(400, "InvalidParameterValue", "names and values are at most 1024 bytes")
            if (a["Name"], a["Value"]) not in out:
                out.append((a["Name"], a["Value"]))
        if len(out) > 256:
            raise AwsError(409, "NumberItemAttributesExceeded", "Too many attributes in this item")
        return out

    def item_name(self, p):
        item = p.get("ItemName")
        if item is None:
            raise AwsError(400, "MissingParameter", "The request must contain the parameter ItemName")
        if len(item.encode()) > 1024:
            raise AwsError(400, "InvalidParameterValue", "ItemName is at most 1024 bytes")
        return item

    def sdb_PutAttributes(self, p):
        dom = self.domain(p)
        item = self.item_name(p)
        new = self.indexed(p, "Attribute")
        if not new:
            raise AwsError(400, "MissingParameter", "The request must contain the parameter Attribute.1.Name")
        cur = dom.get(item, [])
        self.check_expected(p, cur)
        dom[item] = self.apply_put(cur, new)
        self.sdb_reply("PutAttributes")

    def sdb_BatchPutAttributes(self, p):
        dom = self.domain(p)
        items = self.indexed(p, "Item")
        if len(items) > 25:
            raise AwsError(400, "NumberSubmittedItemsExceeded", "Too many items in a single call. Up to 25 items per call allowed.")
        for fields in items.values():
            name = fields.get("ItemName")
            new = self.indexed(fields, "Attribute")
            dom[name] = self.apply_put(dom.get(name, []), new)
        self.sdb_reply("BatchPutAttributes")

    def sdb_GetAttributes(self, p):
        consistent = p.get("ConsistentRead", "false").lower() == "true"
        dom = self.domain(p, consistent)
        item = self.item_name(p)
        wanted = {v for k, v in p.items() if re.match(r"^AttributeName\.\d+$", k)}
        attrs = [(n, v) for (n, v) in dom.get(item, []) if not wanted or n in wanted]
        self.sdb_reply("GetAttributes", "<GetAttributesResult>%s</GetAttributesResult>" % attrs_xml(attrs))

    def sdb_DeleteAttributes(self, p):
        dom = self.domain(p)
        item = self.item_name(p)
        cur = dom.get(item, [])
        self.check_expected(p, cur)
        dels = self.indexed(p, "Attribute")
        if not dels:
            dom.pop(item, None)
        else:
            out = cur
            for d in dels.values():
                if "Value" in d:
                    out = [(n, v) for (n, v) in out if not (n == d["Name"] and v == d["Value"])]
                else:
                    out = [(n, v) for (n, v) in out if n != d["Name"]]
            if out:
                dom[item] = out
            else:
                dom.pop(item, None)
        self.sdb_reply("DeleteAttributes")

    def sdb_BatchDeleteAttributes(self, p):
        dom = self.domain(p)
        items = self.indexed(p, "Item")
        if len(items) > 25:
            raise AwsError(400, "NumberSubmittedItemsExceeded", "Too many items in a single call. Up to 25 items per call allowed.")
        names = [f.get("ItemName") for f in items.values()]
        if len(set(names)) != len(names):
            raise AwsError(400, "DuplicateItemName", "Item name was specified more than once.")
        for fields in items.values():
            name = fields.get("ItemName")
            dels = self.indexed(fields, "Attribute")
            if not dels:
                dom.pop(name, None)
                continue
            out = [(n, v) for (n, v) in dom.get(name, [])
                   if not any(d["Name"] == n and d.get("Value", v) == v for d in dels.values())]
            if out:
                dom[name] = out
            else:
                dom.pop(name, None)
        self.sdb_reply("BatchDeleteAttributes")

    def sdb_Select(self, p):
        text = p.get("SelectExpression")
        if not text:
            raise AwsError(400, "MissingParameter", "The request must contain the parameter SelectExpression")
        try:
            q = Select(text)
        except SelectSyntax as e:
            raise AwsError(400, "InvalidQueryExpression", "The specified query expression syntax is not valid: %s" % e)
        consistent = p.get("ConsistentRead", "false").lower() == "true"
        dom = self.domain({"DomainName": q.domain}, consistent)
        rows = [(name, attrs) for name, attrs in sorted(dom.items())
                if q.where is None or matches(q.where, name, attrs)]
        if q.order:
            attr, desc = q.order
            rows = [r for r in rows if values_of(r[0], r[1], attr)]
            rows.sort(key=lambda r: min(values_of(r[0], r[1], attr)), reverse=desc)
        if q.output == "count":
            inner = "<Item><Name>Domain</Name><Attribute><Name>Count</Name><Value>%d</Value></Attribute></Item>" % len(rows)
            return self.sdb_reply("Select", "<SelectResult>%s</SelectResult>" % inner)
        start = 0
        token = p.get("NextToken")
        if token:
            try:
                t = json.loads(base64.b64decode(token))
                start = int(t["offset"])
                if t["expr"] != hashlib.sha256(text.encode()).hexdigest():
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                raise AwsError(400, "InvalidNextToken", "The specified next token is not valid.")
        if q.limit:
            rows = rows[:q.limit]
        page = int(self.st.config["page_size"])
        chunk = rows[start:start + page]
        inner = []
        for name, attrs in chunk:
            if q.output == "*":
                shown = attrs
            else:
                names = {a[1] for a in q.output if a[0] == "attr"}
                shown = [(n, v) for (n, v) in attrs if n in names]
            inner.append("<Item><Name>%s</Name>%s</Item>" % (xml_escape(name), attrs_xml(shown)))
        if start + page < len(rows):
            tok = base64.b64encode(json.dumps({
                "offset": start + page,
                "expr": hashlib.sha256(text.encode()).hexdigest()}).encode()).decode()
            inner.append("<NextToken>%s</NextToken>" % tok)
        self.sdb_reply("Select", "<SelectResult>%s</SelectResult>" % "".join(inner))

    # -- Glacier -----------------------------------------------------------

    def glacier_error(self, e):
        body = json.dumps({"code": e.code, "message": e.message, "type": "Client" if e.status < 500 else "Server"}).encode()
        # why: a body may be unread when the request fails early; the connection cannot be reused then
        self.close_connection = True
        self.send(e.status, body, headers={"x-amzn-ErrorType": e.code, "x-amzn-RequestId": secrets.token_hex(8),
                                           "Connection": "close"},
                  ctype="application/json")

    def verify_v4(self, method, url, payload_hash):
        auth = self.headers.get("Authorization") or ""
        m = re.match(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
                     r"SignedHeaders=([^,]+),\s*Signature=([0-9a-f]{64})$", auth)
        if not m:
            raise AwsError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        key, day, region, service, signed, sig = m.groups()
        secret = self.st.secret(key)
        if secret is None:
            raise AwsError(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if service != "glacier" or region != self.st.region:
            raise AwsError(403, "InvalidSignatureException", "Credential should be scoped to a valid region/service (%s/%s)" % (region, service))
        amzdate = self.headers.get("x-amz-date")
        if not amzdate:
            raise AwsError(400, "MissingParameterValueException", "Required header x-amz-date")
        t = datetime.datetime.strptime(amzdate, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
        if abs(time.time() - t) > SKEW:
            raise AwsError(403, "InvalidSignatureException", "Signature expired")
        names = signed.split(";")
        if "host" not in names:
            raise AwsError(403, "InvalidSignatureException", "host must be signed")
        canon_headers = ""
        for h in names:
            vals = self.headers.get_all(h) or []
            canon_headers += "%s:%s\n" % (h, ",".join(" ".join(v.split()) for v in vals))
        query = sorted((aws_quote(k), aws_quote(v)) for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        canon_query = "&".join("%s=%s" % kv for kv in query)
        canon_uri = urllib.parse.quote(url.path, safe="/-_.~")
        creq = "\n".join([method, canon_uri, canon_query, canon_headers, signed, payload_hash])
        scope = "%s/%s/%s/aws4_request" % (day, region, service)
        sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + secret).encode()
        for part in (day, region, service, "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            raise AwsError(403, "InvalidSignatureException",
                           "The request signature we calculated does not match the signature you provided.")

    def vault(self, name):
        v = self.st.vaults.get(name)
        if v is None:
            raise AwsError(404, "ResourceNotFoundException", "Vault not found for ARN: %s" % self.arn(name))
        return v

    def arn(self, vault):
        return "arn:aws:glacier:%s:012345678901:vaults/%s" % (self.st.region, vault)

    def glacier(self, method, url):
        parts = url.path.split("/")[1:]
        # ["-", "vaults", name, kind, id, "output"]
        if self.headers.get("x-amz-glacier-version") != "2012-06-01":
            raise AwsError(400, "MissingParameterValueException", "Required header x-amz-glacier-version is missing or not 2012-06-01")
        claimed = self.headers.get("x-amz-content-sha256")
        streamed = method in ("POST", "PUT") and len(parts) >= 4 and parts[3] in ("archives", "multipart-uploads") and claimed
        body = b""
        if streamed:
            # the body is checked against the signed hash after it is read (it may be 4 GiB)
            self.verify_v4(method, url, claimed)
        else:
            body = self.read_body()
            actual = hashlib.sha256(body).hexdigest()
            if claimed and claimed != actual:
                raise AwsError(400, "InvalidParameterValueException", "x-amz-content-sha256 does not match the body")
            self.verify_v4(method, url, claimed or actual)
        op = self.glacier_op(method, parts)
        self.st.count(op)
        fault = self.st.fault_for(op)
        if fault:
            if streamed:
                self.read_body(lambda b: None)
            raise AwsError(fault["status"], fault["code"], "injected fault")
        handler = getattr(self, "g_" + op)
        return handler(parts, body, url)

    @staticmethod
    def glacier_op(method, parts):
        n = len(parts)
        if n == 2 and method == "GET":
            return "ListVaults"
        if n == 3:
            return {"PUT": "CreateVault", "GET": "DescribeVault", "DELETE": "DeleteVault"}.get(method, "Bad")
        kind = parts[3] if n > 3 else ""
        table = {
            ("POST", "archives", 4): "UploadArchive",
            ("DELETE", "archives", 5): "DeleteArchive",
            ("POST", "multipart-uploads", 4): "InitiateMultipartUpload",
            ("GET", "multipart-uploads", 4): "ListMultipartUploads",
            ("PUT", "multipart-uploads", 5): "UploadMultipartPart",
            ("POST", "multipart-uploads", 5): "CompleteMultipartUpload",
            ("DELETE", "multipart-uploads", 5): "AbortMultipartUpload",
            ("GET", "multipart-uploads", 5): "ListParts",
            ("POST", "jobs", 4): "InitiateJob",
            ("GET", "jobs", 4): "ListJobs",
            ("GET", "jobs", 5): "DescribeJob",
            ("GET", "jobs", 6): "GetJobOutput",
        }
        op = table.get((method, kind, n))
        if op is None:
            raise AwsError(400, "InvalidParameterValueException", "unsupported request %s %s" % (method, "/".join(parts)))
        return op

    def json_reply(self, status, obj, headers=None):
        self.send(status, json.dumps(obj).encode(), headers=headers, ctype="application/json")

    def g_ListVaults(self, parts, body, url):
        with self.st.lock:
            vl = [{"VaultName": n, "VaultARN": self.arn(n), "CreationDate": iso(v["created"]),
                   "LastInventoryDate": v.get("inventory_date"),
                   "NumberOfArchives": len(v["archives"]),
                   "SizeInBytes": sum(a["size"] for a in v["archives"].values())}
                  for n, v in sorted(self.st.vaults.items())]
        self.json_reply(200, {"VaultList": vl, "Marker": None})

    def g_CreateVault(self, parts, body, url):
        name = parts[2]
        if not re.match(r"^[A-Za-z0-9_.\-]{1,255}$", name):
            raise AwsError(400, "InvalidParameterValueException", "bad vault name")
        with self.st.lock:
            self.st.vaults.setdefault(name, {"archives": {}, "uploads": {}, "jobs": {}, "created": time.time()})
        self.send(201, headers={"Location": "/%s/vaults/%s" % (parts[0], name)})

    def g_DescribeVault(self, parts, body, url):
        with self.st.lock:
            v = self.vault(parts[2])
            self.json_reply(200, {"VaultName": parts[2], "VaultARN": self.arn(parts[2]),
                                  "CreationDate": iso(v["created"]),
                                  "LastInventoryDate": v.get("inventory_date"),
                                  "NumberOfArchives": len(v["archives"]),
                                  "SizeInBytes": sum(a["size"] for a in v["archives"].values())})

    def g_DeleteVault(self, parts, body, url):
        with self.st.lock:
            v = self.vault(parts[2])
            if v["archives"]:
                raise AwsError(400, "InvalidParameterValueException", "Vault not empty")
            del self.st.vaults[parts[2]]
        self.send(204)

    def new_id(self):
        return secrets.token_urlsafe(104)[:138]

    def description(self):
        d = self.headers.get("x-amz-archive-description", "")
        if len(d) > 1024 or any(not 32 <= ord(c) <= 126 for c in d):
            raise AwsError(400, "InvalidParameterValueException", "Invalid archive description")
        return d

    def receive(self, path, offset, length):
        """Read the body into `path` at `offset`, hashing it."""
        claimed = self.headers.get("x-amz-content-sha256")
        n = int(self.headers.get("Content-Length") or -1)
        if n != length:
            self.read_body(lambda b: None)
            raise AwsError(400, "InvalidParameterValueException", "Content-Length %d does not match the range (%d bytes)" % (n, length))
        h = TreeHasher()
        with open(path, "r+b" if os.path.exists(path) else "w+b") as f:
            f.seek(offset)

            def sink(b):
                h.update(b)
                f.write(b)
            self.read_body(sink)
        if claimed and claimed != h.linear.hexdigest():
            raise AwsError(400, "InvalidParameterValueException", "x-amz-content-sha256 does not match the body")
        return h

    def g_UploadArchive(self, parts, body, url):
        v = self.vault(parts[2])
        tree = self.headers.get("x-amz-sha256-tree-hash")
        if not tree:
            self.read_body(lambda b: None)
            raise AwsError(400, "MissingParameterValueException", "Required header x-amz-sha256-tree-hash")
        desc = self.description()
        size = int(self.headers.get("Content-Length") or 0)
        aid = self.new_id()
        path = os.path.join(self.st.data, aid)
        h = self.receive(path, 0, size)
        got = h.tree().hex()
        if got != tree.lower():
            os.unlink(path)
            raise AwsError(400, "InvalidParameterValueException",
                           "Checksum mismatch: expected %s (calculated), got %s" % (got, tree))
        with self.st.lock:
            v["archives"][aid] = {"size": size, "description": desc, "created": time.time(),
                                  "tree_hash": got, "path": path}
        self.send(201, headers={"Location": "/%s/vaults/%s/archives/%s" % (parts[0], parts[2], aid),
                                "x-amz-archive-id": aid, "x-amz-sha256-tree-hash": got})

    def g_DeleteArchive(self, parts, body, url):
        with self.st.lock:
            v = self.vault(parts[2])
            a = v["archives"].pop(parts[4], None)
        if a is None:
            raise AwsError(404, "ResourceNotFoundException", "Archive not found: %s" % parts[4])
        try:
            os.unlink(a["path"])
        except FileNotFoundError:
            pass
        self.send(204)

    def g_InitiateMultipartUpload(self, parts, body, url):
        v = self.vault(parts[2])
        try:
            size = int(self.headers.get("x-amz-part-size", ""))
        except ValueError:
            raise AwsError(400, "MissingParameterValueException", "Required header x-amz-part-size")
        if size < MIB or size > 4 << 30 or (size // MIB) & (size // MIB - 1) or size % MIB:
            raise AwsError(400, "InvalidParameterValueException", "Invalid part size: %d" % size)
        uid = self.new_id()
        with self.st.lock:
            v["uploads"][uid] = {"part_size": size, "description": self.description(),
                                 "created": time.time(), "parts": {},
                                 "path": os.path.join(self.st.data, "upload-" + uid)}
        self.send(201, headers={"Location": "/%s/vaults/%s/multipart-uploads/%s" % (parts[0], parts[2], uid),
                                "x-amz-multipart-upload-id": uid})

    def upload(self, parts):
        v = self.vault(parts[2])
        u = v["uploads"].get(parts[4])
        if u is None:
            raise AwsError(404, "ResourceNotFoundException", "Multipart upload not found: %s" % parts[4])
        return v, u

    def g_UploadMultipartPart(self, parts, body, url):
        with self.st.lock:
            v, u = self.upload(parts)
        rng = self.headers.get("Content-Range", "")
        m = re.match(r"^bytes (\d+)-(\d+)/\*$", rng)
        if not m:
            self.read_body(lambda b: None)
            raise AwsError(400, "InvalidParameterValueException", "Invalid Content-Range: %r" % rng)
        start, end = int(m.group(1)), int(m.group(2))
        length = end - start + 1
        tree = self.headers.get("x-amz-sha256-tree-hash")
        if not tree:
            self.read_body(lambda b: None)
            raise AwsError(400, "MissingParameterValueException", "Required header x-amz-sha256-tree-hash")
        if start % u["part_size"] or length > u["part_size"] or length <= 0:
            self.read_body(lambda b: None)
            raise AwsError(400, "InvalidParameterValueException",
                           "Content-Range %s is not a part of size %d" % (rng, u["part_size"]))
        h = self.receive(u["path"], start, length)
        got = h.tree().hex()
        if got != tree.lower():
            raise AwsError(400, "InvalidParameterValueException",
                           "Checksum mismatch: expected %s (calculated), got %s" % (got, tree))
        with self.st.lock:
            u["parts"][start] = (length, got)
        self.send(204, headers={"x-amz-sha256-tree-hash": got})

    def g_ListParts(self, parts, body, url):
        with self.st.lock:
            v, u = self.upload(parts)
            self.json_reply(200, {
                "ArchiveDescription": u["description"], "CreationDate": iso(u["created"]),
                "Marker": None, "MultipartUploadId": parts[4], "PartSizeInBytes": u["part_size"],
                "Parts": [{"RangeInBytes": "%d-%d" % (s, s + l - 1), "SHA256TreeHash": t}
                          for s, (l, t) in sorted(u["parts"].items())],
                "VaultARN": self.arn(parts[2])})

    def g_ListMultipartUploads(self, parts, body, url):
        with self.st.lock:
            v = self.vault(parts[2])
            self.json_reply(200, {"UploadsList": [
                {"ArchiveDescription": u["description"], "CreationDate": iso(u["created"]),
                 "MultipartUploadId": uid, "PartSizeInBytes": u["part_size"], "VaultARN": self.arn(parts[2])}
                for uid, u in v["uploads"].items()], "Marker": None})

    def g_AbortMultipartUpload(self, parts, body, url):
        with self.st.lock:
            v, u = self.upload(parts)
            del v["uploads"][parts[4]]
        try:
            os.unlink(u["path"])
        except FileNotFoundError:
            pass
        self.send(204)

    def g_CompleteMultipartUpload(self, parts, body, url):
        with self.st.lock:
            v, u = self.upload(parts)
        try:
            size = int(self.headers.get("x-amz-archive-size", ""))
        except ValueError:
            raise AwsError(400, "MissingParameterValueException", "Required header x-amz-archive-size")
        tree = (self.headers.get("x-amz-sha256-tree-hash") or "").lower()
        at = 0
        part_hashes = []
        for start, (length, h) in sorted(u["parts"].items()):
            if start != at:
                raise AwsError(400, "InvalidParameterValueException", "a part is missing at byte %d" % at)
            if length != u["part_size"] and start + length != size:
                raise AwsError(400, "InvalidParameterValueException", "the part at %d is short but not the last" % start)
            part_hashes.append(bytes.fromhex(h))
            at += length
        if at != size:
            raise AwsError(400, "InvalidParameterValueException",
                           "archive size %d does not match the parts (%d bytes)" % (size, at))
        whole = hash_file_range(u["path"], 0, size).tree().hex()
        if whole != tree or tree_combine(part_hashes).hex() != whole:
            raise AwsError(400, "InvalidParameterValueException",
                           "Checksum mismatch: expected %s (calculated), got %s" % (whole, tree))
        aid = self.new_id()
        path = os.path.join(self.st.data, aid)
        os.rename(u["path"], path)
        with open(path, "r+b") as f:
            f.truncate(size)
        with self.st.lock:
            del v["uploads"][parts[4]]
            v["archives"][aid] = {"size": size, "description": u["description"], "created": time.time(),
                                  "tree_hash": whole, "path": path}
        self.send(201, headers={"Location": "/%s/vaults/%s/archives/%s" % (parts[0], parts[2], aid),
                                "x-amz-archive-id": aid, "x-amz-sha256-tree-hash": whole})

    def job_view(self, vault, jid, j):
        now = time.time()
        done = now >= j["complete_at"]
        out = {
            "Action": "ArchiveRetrieval" if j["type"] == "archive-retrieval" else "InventoryRetrieval",
            "ArchiveId": j.get("archive_id"),
            "ArchiveSHA256TreeHash": j.get("archive_tree_hash"),
            "ArchiveSizeInBytes": j.get("archive_size"),
            "Completed": done,
            "CompletionDate": iso(j["complete_at"]) if done else None,
            "CreationDate": iso(j["created"]),
            "InventorySizeInBytes": len(j["inventory"]) if j.get("inventory") is not None and done else None,
            "JobDescription": j.get("description"),
            "JobId": jid,
            "RetrievalByteRange": j.get("range"),
            "SHA256TreeHash": j.get("tree_hash") if done else None,
            "SNSTopic": None,
            "StatusCode": "Succeeded" if done else "InProgress",
            "StatusMessage": "Succeeded" if done else None,
            "Tier": j.get("tier"),
            "VaultARN": self.arn(vault),
        }
        return out

    def live_jobs(self, v):
        now = time.time()
        ttl = self.st.config["job_ttl"]
        for jid in [jid for jid, j in v["jobs"].items() if now > j["complete_at"] + ttl]:
            del v["jobs"][jid]
        return v["jobs"]

    def g_InitiateJob(self, parts, body, url):
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            raise AwsError(400, "InvalidParameterValueException", "the job parameters are not JSON")
        now = time.time()
        with self.st.lock:
            v = self.vault(parts[2])
            kind = req.get("Type")
            job = {"type": kind, "created": now, "complete_at": now + self.st.config["job_delay"],
                   "description": req.get("Description"), "tier": req.get("Tier") or "Standard"}
            if kind == "archive-retrieval":
                aid = req.get("ArchiveId")
                a = v["archives"].get(aid)
                if a is None:
                    raise AwsError(404, "ResourceNotFoundException", "Archive not found: %s" % aid)
                size = a["size"]
                rng = req.get("RetrievalByteRange")
                if rng:
                    m = re.match(r"^(\d+)-(\d+)$", rng)
                    if not m:
                        raise AwsError(400, "InvalidParameterValueException", "Invalid RetrievalByteRange: %s" % rng)
                    start, end = int(m.group(1)), int(m.group(2))
                    if start % MIB or not (end + 1 == size or (end + 1) % MIB == 0) or end >= size or start > end:
                        raise AwsError(400, "InvalidParameterValueException",
                                       "The byte range %s is not megabyte aligned for an archive of %d bytes" % (rng, size))
                else:
                    start, end = 0, size - 1
                job.update({"archive_id": aid, "archive_size": size, "archive_tree_hash": a["tree_hash"],
                            "range": "%d-%d" % (start, end), "start": start, "len": end - start + 1,
                            "path": a["path"]})
                if tree_aligned(start, end + 1, size):
                    job["tree_hash"] = hash_file_range(a["path"], start, end - start + 1).tree().hex()
                self.st.job_log.append({"time": now, "type": kind, "archive_id": aid,
                                        "start": start, "len": end - start + 1,
                                        "description": req.get("Description")})
            elif kind == "inventory-retrieval":
                fmt = req.get("Format") or "JSON"
                if fmt != "JSON":
                    raise AwsError(400, "InvalidParameterValueException", "this fake makes JSON inventories only")
                inv = {"VaultARN": self.arn(parts[2]), "InventoryDate": iso(now),
                       "ArchiveList": [{"ArchiveId": aid, "ArchiveDescription": a["description"],
                                        "CreationDate": iso(a["created"]), "Size": a["size"],
                                        "SHA256TreeHash": a["tree_hash"]}
                                       for aid, a in v["archives"].items()]}
                job["inventory"] = json.dumps(inv).encode()
                v["inventory_date"] = iso(now)
                self.st.job_log.append({"time": now, "type": kind})
            else:
                raise AwsError(400, "InvalidParameterValueException", "Invalid job type: %s" % kind)
            jid = self.new_id()
            v["jobs"][jid] = job
        self.send(202, headers={"Location": "/%s/vaults/%s/jobs/%s" % (parts[0], parts[2], jid),
                                "x-amz-job-id": jid})

    def job(self, parts):
        v = self.vault(parts[2])
        j = self.live_jobs(v).get(parts[4])
        if j is None:
            raise AwsError(404, "ResourceNotFoundException", "The job ID was not found: %s" % parts[4])
        return j

    def g_DescribeJob(self, parts, body, url):
        with self.st.lock:
            j = self.job(parts)
            self.json_reply(200, self.job_view(parts[2], parts[4], j))

    def g_ListJobs(self, parts, body, url):
        q = dict(urllib.parse.parse_qsl(url.query))
        with self.st.lock:
            v = self.vault(parts[2])
            views = [self.job_view(parts[2], jid, j) for jid, j in self.live_jobs(v).items()]
        if "statuscode" in q:
            views = [x for x in views if x["StatusCode"] == q["statuscode"]]
        if "completed" in q:
            views = [x for x in views if str(x["Completed"]).lower() == q["completed"].lower()]
        self.json_reply(200, {"JobList": views, "Marker": None})

    def g_GetJobOutput(self, parts, body, url):
        with self.st.lock:
            j = dict(self.job(parts))
            corrupt = self.st.corrupt_outputs > 0 and j["type"] == "archive-retrieval"
            if corrupt:
                self.st.corrupt_outputs -= 1
        if time.time() < j["complete_at"]:
            raise AwsError(400, "InvalidParameterValueException",
                           "The job is not currently available for download: %s" % parts[4])
        if j["type"] == "inventory-retrieval":
            return self.send(200, j["inventory"], ctype="application/json")
        total = j["len"]
        lo, hi = 0, total - 1
        status = 200
        rng = self.headers.get("Range")
        headers = {"Accept-Ranges": "bytes", "x-amz-archive-description": j.get("description") or ""}
        if rng:
            m = re.match(r"^bytes=(\d+)-(\d*)$", rng)
            if not m or int(m.group(1)) >= total:
                raise AwsError(416, "InvalidParameterValueException", "Invalid range: %s" % rng)
            lo = int(m.group(1))
            hi = min(int(m.group(2)) if m.group(2) else total - 1, total - 1)
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (lo, hi, total)
        start = j["start"] + lo
        length = hi - lo + 1
        if lo == 0 and hi == total - 1:
            if j.get("tree_hash"):
                headers["x-amz-sha256-tree-hash"] = j["tree_hash"]
        elif tree_aligned(start, start + length, j["archive_size"]):
            headers["x-amz-sha256-tree-hash"] = hash_file_range(j["path"], start, length).tree().hex()
        self.send_response(status)
        for k, val in headers.items():
            self.send_header(k, val)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        with open(j["path"], "rb") as f:
            f.seek(start)
            left = length
            first = True
            while left:
                b = f.read(min(left, MIB))
                if not b:
                    break
                if corrupt and first:
                    b = bytes([b[0] ^ 0xFF]) + b[1:]
                first = False
                self.wfile.write(b)
                left -= len(b)


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def attrs_xml(attrs):
    return "".join("<Attribute><Name>%s</Name><Value>%s</Value></Attribute>" % (xml_escape(n), xml_escape(v))
                   for n, v in attrs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--access-key", default="AKIDSTRATATEST")
    ap.add_argument("--secret", default="strata-test-secret")
    ap.add_argument("--region", default="us-east-1")
    args = ap.parse_args()
    os.makedirs(args.data, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args.data, {args.access_key: args.secret}, args.region)
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
