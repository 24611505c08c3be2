#!/usr/bin/env python3
"""Run Deltaic's own github source, from a Deltaic checkout outside this
repository (DELTAIC_SRC; never copied into strata), against the fake GitHub:
`run_deltaic.py DELTAIC_SRC BASE_URL TOKEN ROOT GIT ORG [REPO]` backs up one
unit exactly as `deltaic github backup ORG [REPO]` would, with git run as
GIT (Deltaic's `github-git-path`; the oracle test gives a wrapper that logs
each call and runs git). Two adaptations change no byte it writes:
github3.py is pointed at the fake (GitHub Enterprise style,
BASE_URL/api/v3), and Deltaic's `dt-askpass` helper, which its installed
package provides, is provided here. Used only by the oracle mode of
github_deltaic_byte_identity (docs/testing.md)."""

import sys

# why: the Deltaic checkout is not ours to write into: no __pycache__ there
sys.dont_write_bytecode = True

import collections  # noqa: E402
import collections.abc  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402

# why: github3.py 0.9.6 imports these aliases, which Python 3.10 removed
for _name in ("Callable", "Iterator", "Iterable", "Mapping", "MutableMapping", "Sequence"):
    setattr(collections, _name, getattr(collections.abc, _name))

src, base, token, root, git, org = sys.argv[1:7]
repo = sys.argv[7] if len(sys.argv) > 7 else None
sys.path.insert(0, src)

import deltaic.sources.github as gh  # noqa: E402

_login = gh.github3.login


def login(*args, **kwargs):
    g = _login(*args, url=base, **kwargs)
    # why: github3.py 0.9.6 asks /rate_limit of api.github.com even for an
    # Enterprise server; Deltaic prints the answer at the end of a backup
    g._github_url = base + "/api/v3"
    return g


gh.github3.login = login

# Deltaic finds dt-askpass beside sys.argv[0]; it prints the user for a
# "Username" prompt and the password for a "Password" prompt.
# why: under the test's HOME, which the test removes
bindir = tempfile.mkdtemp(prefix="deltaic-bin.", dir=os.environ["HOME"])
askpass = os.path.join(bindir, "dt-askpass")
with open(askpass, "w") as f:
    f.write("#!/bin/sh\ncase \"$1\" in *Username*) echo \"$DT_ASKPASS_USER\";; "
            "*Password*) echo \"$DT_ASKPASS_PASS\";; *) exit 2;; esac\n")
os.chmod(askpass, stat.S_IRWXU)
sys.argv[0] = os.path.join(bindir, "deltaic")

config = {"settings": {"root": root, "github-token": token, "github-git-path": git}}
args = ["backup", org] + ([repo] if repo else [])
gh.github.main(args=args, obj=config, standalone_mode=False)
