#!/usr/bin/env bash
# The github source on an organization of N repositories (default 50) served
# by the fake GitHub (tests/support/github/fake_github.py): each repository a
# real git repository over smart HTTP, 30 issues with a comment each, a pull
# request with a review, 3 commit comments, 2 labels, a milestone, a release
# with a 64 KiB asset, a wiki. Measures `strata run --no-snapshot` (the
# listing plus one child per unit, github-workers wide) for the first run and
# for a second run in which nothing changed: wall time, API requests sent and
# responses other than 304 (counted by the fake), git requests, and the peak
# RSS of the largest strata process (GNU time). Not a test: a bench.
#   benches/github_org.sh [N] [WORKERS]      (default 50, 1)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
workers=${2:-1}
cargo build --release --quiet --bin strata
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/strata")
work=$(mktemp -d /tmp/strata-bench-github.XXXXXX)
fake_pid=
cleanup() { [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
allow=(); [ "$(id -u)" = 0 ] && allow=(--allow-root)
token=ghp_benchToken
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.org GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.org

mkdir -p "$work/git/bench" "$work/root"
git init -q -b main "$work/src"
for i in $(seq 1 20); do head -c 4096 /dev/urandom | base64 > "$work/src/f$i"; done
git -C "$work/src" add . && git -C "$work/src" commit -qm one
git -C "$work/src" tag -a v1.0 -m v1.0
git init -q -b master "$work/wikisrc" && echo '# Home' > "$work/wikisrc/Home.md"
git -C "$work/wikisrc" add . && git -C "$work/wikisrc" commit -qm wiki
for i in $(seq 1 "$n"); do
    git clone -q --bare "$work/src" "$work/git/bench/r$i.git"
    git clone -q --bare "$work/wikisrc" "$work/git/bench/r$i.wiki.git"
done

python3 - "$n" "$token" > "$work/world.json" <<'EOF'
import base64, json, os, sys
n, token = int(sys.argv[1]), sys.argv[2]
asset = base64.b64encode(os.urandom(65536)).decode()
def t(d, h): return "2024-%02d-%02dT%02d:00:00Z" % (1 + d // 28, 1 + d % 28, h)
repos = {}
for r in range(1, n + 1):
    issues = []
    for k in range(1, 31):
        i = {"number": k, "title": "issue %d of r%d" % (k, r), "body": "body\n" * 5, "user": "ann",
             "labels": ["bug"] if k % 2 else [], "milestone": 1 if k % 3 == 0 else None,
             "created_at": t(k, 1), "updated_at": t(k, 2),
             "comments": [{"user": "bob", "body": "comment on %d" % k, "created_at": t(k, 2)}],
             "events": [{"actor": "ann", "event": "labeled", "created_at": t(k, 1)}]}
        if k == 30:
            i["pull"] = {"head_ref": "feature", "base_ref": "main",
                         "reviews": [{"user": "bob", "state": "APPROVED", "body": "ok", "submitted_at": t(k, 3)}]}
        issues.append(i)
    repos["r%d" % r] = {
        "description": "repository %d" % r, "issues": issues,
        "labels": [{"name": "bug", "color": "d73a4a"}, {"name": "docs", "color": "0075ca"}],
        "milestones": [{"number": 1, "title": "v1", "creator": "ann", "created_at": t(1, 0), "updated_at": t(1, 0)}],
        "commit_comments": [{"commit_id": "%040x" % (r * 10 + c), "user": "ann", "body": "cc",
                             "created_at": t(c, 0), "updated_at": t(c, 0)} for c in range(3)],
        "releases": [{"tag_name": "v1.0", "name": "One", "body": "notes", "created_at": t(5, 0),
                      "published_at": t(5, 0),
                      "assets": [{"name": "a.bin", "data_b64": asset, "updated_at": t(5, 1)}]}],
    }
print(json.dumps({"token": token, "orgs": {"bench": {
    "members": [{"login": "ann", "role": "admin"}, {"login": "bob"}],
    "teams": [{"name": "All", "slug": "all", "permission": "push", "members": ["ann", "bob"],
               "repos": sorted(repos)}],
    "repos": repos}}}))
EOF

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
aport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 tests/support/github/fake_github.py --port "$port" --asset-port "$aport" \
    --git-root "$work/git" --world "$work/world.json" > "$work/fake.out" &
fake_pid=$!
for _ in $(seq 1 100); do grep -q ready "$work/fake.out" 2>/dev/null && break; sleep 0.1; done
printf '%s\n' "$token" > "$work/token"
cat > "$work/config.yaml" <<EOF
settings:
  root: $work/root
  snapshot-store: dir
  github-token-file: $work/token
  github-api-url: http://127.0.0.1:$port/api/v3
  github-scrub-probability: 0
  github-workers: $workers
github:
  bench: {}
EOF

stats() {  # prints: api_requests api_not_304 git_requests
    curl -s "http://127.0.0.1:$port/_control/stats" | python3 -c '
import json, sys
log = json.load(sys.stdin)["log"]
api = [l for l in log if l["path"].startswith("/api/v3/")]
print(len(api), sum(1 for l in api if l["status"] != 304), len(log) - len(api))'
}
one_run() {  # $1 = label
    curl -s -X POST "http://127.0.0.1:$port/_control/reset" > /dev/null
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$work/rss" "$bin" -c "$work/config.yaml" "${allow[@]}" -q run --no-snapshot
    t1=$(date +%s.%N)
    read -r api not304 gitreq < <(stats)
    awk -v l="$1" -v a="$t0" -v b="$t1" -v api="$api" -v n3="$not304" -v g="$gitreq" -v rss="$(cat "$work/rss")" 'BEGIN {
        printf "%-16s %7.2f s  %6d API requests  %6d not 304  %6d git requests  peak RSS %6.1f MiB\n", l, b - a, api, n3, g, rss / 1024 }'
}
echo "organization of $n repositories, github-workers $workers"
one_run "first run"
one_run "no-change run"
du -sh "$work/root/github" | awk '{print "stored: " $1}'
