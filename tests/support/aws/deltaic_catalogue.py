#!/usr/bin/env python3
"""Write archive sets into a Glacier vault + SimpleDB domain the way Deltaic
(src/deltaic/archivers/__init__.py and aws.py) writes them, with botocore's
own clients (SigV2 for SimpleDB, SigV4 and tree hashes for Glacier), so that
strata's tests read a catalogue they did not write.

What Deltaic does, and this script repeats:
- pack: GNU tar `c --force-local --format=gnu --sparse --acls --selinux
  --xattrs -V "<set> <unit>" -C ROOT UNIT [--gzip|--lzop]`, then, to
  encrypt, gpg with `--batch --no-tty --no-options
  --personal-cipher-preferences AES256,AES192,AES
  --personal-digest-preferences SHA256,SHA1
  --personal-compress-preferences Uncompressed -seu SIGNER -r RECIPIENT`;
  the metadata is {compression, encryption, sha256 (hex), size};
- upload: a multipart upload (boto's concurrent uploader always uploads in
  parts; Deltaic asks for 64 MiB parts, this script for --part-size to keep
  test archives small), description "<set> <unit>";
- catalogue: item "<set>/<unit>" with compression, encryption, sha256, size,
  aws-set, aws-archive, aws-aid, aws-creation-time (isoformat of an aware
  UTC time), every attribute Replace=true, conditional on aws-aid not
  existing; a complete set gets item "<set>//" with aws-set and
  aws-complete=true;
- the /bandwidth item as Deltaic's _request_download_quota leaves it.

Usage: deltaic_catalogue.py MANIFEST.json; prints a JSON summary (per
archive: set, unit, sha256, size, aid).

MANIFEST: {"endpoint", "access_key", "secret", "region", "namespace",
"part_size", "root", "gpg": {"home", "signer", "recipient"} | null,
"archives": [{"set", "unit", "compression", "encrypt", "created"}],
"complete": [set...], "bandwidth": {attr: value} | null}
"""

import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import boto3
from botocore.config import Config
from botocore.utils import calculate_tree_hash


def pack(m, a, out):
    tar = ["tar", "c", "--force-local", "--format=gnu", "--sparse", "--acls",
           "--selinux", "--xattrs", "-V", "%s %s" % (a["set"], a["unit"]),
           "-C", m["root"], a["unit"]]
    opt = {"gzip": "--gzip", "lzop": "--lzop", "none": None}[a["compression"]]
    if opt:
        tar.append(opt)
    env = dict(os.environ)
    if a["encrypt"]:
        g = m["gpg"]
        env["GNUPGHOME"] = g["home"]
        t = subprocess.Popen(tar, stdout=subprocess.PIPE)
        gpg = subprocess.Popen(
            ["gpg", "--batch", "--no-tty", "--no-options",
             "--personal-cipher-preferences", "AES256,AES192,AES",
             "--personal-digest-preferences", "SHA256,SHA1",
             "--personal-compress-preferences", "Uncompressed",
             "-seu", g["signer"], "-r", g["recipient"]],
            stdin=t.stdout, stdout=out, env=env)
        t.stdout.close()
        if gpg.wait() or t.wait():
            sys.exit("packing %s failed" % a["unit"])
    else:
        subprocess.run(tar, stdout=out, check=True)
    out.flush()
    out.seek(0)
    h = hashlib.sha256()
    size = 0
    while True:
        b = out.read(1 << 20)
        if not b:
            break
        h.update(b)
        size += len(b)
    return h.hexdigest(), size


def main():
    m = json.load(open(sys.argv[1]))
    kw = dict(endpoint_url=m["endpoint"], aws_access_key_id=m["access_key"],
              aws_secret_access_key=m["secret"], region_name=m["region"],
              config=Config(retries={"max_attempts": 1}))
    sdb = boto3.client("sdb", **kw)
    glacier = boto3.client("glacier", **kw)
    ns = m["namespace"]
    sdb.create_domain(DomainName=ns)
    glacier.create_vault(vaultName=ns)
    part = int(m["part_size"])
    summary = []
    for a in m["archives"]:
        with tempfile.TemporaryFile() as f:
            sha, size = pack(m, a, f)
            f.seek(0)
            desc = "%s %s" % (a["set"], a["unit"])
            up = glacier.initiate_multipart_upload(
                vaultName=ns, archiveDescription=desc, partSize=str(part))
            off = 0
            while off < size:
                body = f.read(part)
                glacier.upload_multipart_part(
                    vaultName=ns, uploadId=up["uploadId"],
                    range="bytes %d-%d/*" % (off, off + len(body) - 1), body=body)
                off += len(body)
            f.seek(0)
            done = glacier.complete_multipart_upload(
                vaultName=ns, uploadId=up["uploadId"], archiveSize=str(size),
                checksum=calculate_tree_hash(f))
        aid = done["archiveId"]
        created = a.get("created") or datetime.datetime.now(datetime.timezone.utc).isoformat()
        attrs = {
            "compression": a["compression"],
            "encryption": "gpg" if a["encrypt"] else "none",
            "sha256": sha,
            "size": str(size),
            "aws-set": a["set"],
            "aws-archive": a["unit"],
            "aws-aid": aid,
            "aws-creation-time": created,
        }
        sdb.put_attributes(
            DomainName=ns, ItemName="%s/%s" % (a["set"], a["unit"]),
            Attributes=[{"Name": k, "Value": v, "Replace": True} for k, v in attrs.items()],
            Expected={"Name": "aws-aid", "Exists": False})
        summary.append({"set": a["set"], "unit": a["unit"], "sha256": sha, "size": size, "aid": aid})
    for s in m.get("complete", []):
        sdb.put_attributes(
            DomainName=ns, ItemName=s + "//",
            Attributes=[{"Name": "aws-set", "Value": s, "Replace": True},
                        {"Name": "aws-complete", "Value": "true", "Replace": True}])
    bw = m.get("bandwidth")
    if bw:
        sdb.put_attributes(
            DomainName=ns, ItemName="/bandwidth",
            Attributes=[{"Name": k, "Value": v, "Replace": True} for k, v in bw.items()],
            Expected={"Name": "serial", "Exists": False})
    json.dump(summary, sys.stdout)


if __name__ == "__main__":
    main()
