#!/usr/bin/env python3
"""S3 requests the harness's client (RGW_S3) lacks, for the protection tests
(bucket policy, Object Lock, versions), signed with the keys in the
environment (RGW_ACCESS_KEY_ID / RGW_SECRET_ACCESS_KEY):

  s3admin.py mkbucket-lock ENDPOINT BUCKET   a bucket with Object Lock enabled
  s3admin.py policy ENDPOINT BUCKET USER [prune|nolist] [prune-user=UID]
        the bucket policy doc/protection.md gives: USER (an RGW user id) may
        put, get, list (versions too) and abort (backup); with "prune" also
        delete (versions too) and read a version's lock; "nolist": the
        backup policy without s3:ListBucketVersions; prune-user=UID: a
        second statement giving UID the prune policy (the bucket's owner
        too: an object belongs to the user who wrote it, and the owner
        reads another user's objects only by the policy)
  s3admin.py lock-config ENDPOINT BUCKET     GetObjectLockConfiguration (body)
  s3admin.py versions ENDPOINT BUCKET PREFIX one "key<TAB>version-id<TAB>kind"
        per version (kind: version or marker)
  s3admin.py head ENDPOINT BUCKET KEY        status and the lock headers
  s3admin.py delete ENDPOINT BUCKET KEY [VERSION-ID [bypass]]
        DELETE (of one version; "bypass": past its governance lock, as the
        bucket's owner may); prints the status and S3 error code

Exit 0 on 2xx, 1 otherwise (delete, head: the status is printed either way).
"""
import base64
import hashlib
import http.client
import importlib.util
import json
import os
import sys
import urllib.parse
import xml.etree.ElementTree as ET

spec = importlib.util.spec_from_file_location("s3", os.environ["RGW_S3"])
s3 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(s3)
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def request(method, url, body=b"", headers=None, md5=False):
    headers = dict(headers or {})
    if md5:
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    u, target = s3.sign(method, url, headers, hashlib.sha256(body).hexdigest())
    if method in ("PUT", "POST"):
        headers["Content-Length"] = str(len(body))
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    conn.request(method, target, body=body or None, headers=headers)
    r = conn.getresponse()
    return r, r.read()


def code_of(body):
    try:
        return ET.fromstring(body).findtext("Code") or ""
    except ET.ParseError:
        return ""


def actions_of(prune, nolist):
    actions = ["s3:PutObject", "s3:GetObject", "s3:ListBucket",
               "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
               "s3:ListBucketMultipartUploads", "s3:GetBucketObjectLockConfiguration",
               "s3:GetObjectRetention", "s3:PutObjectRetention", "s3:ListBucketVersions"]
    if prune:
        actions += ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObjectVersion"]
    if nolist:
        actions.remove("s3:ListBucketVersions")
    return actions


def backup_policy(bucket, user, opts):
    def stmt(uid, actions):
        return {"Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam:::user/{uid}"]},
                "Action": actions,
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}
    sts = [stmt(user, actions_of("prune" in opts, "nolist" in opts))]
    for o in opts:
        if o.startswith("prune-user="):
            sts.append(stmt(o.split("=", 1)[1], actions_of(True, False)))
    return {"Version": "2012-10-17", "Statement": sts}


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    cmd, ep, bucket = argv[1], argv[2].rstrip("/"), argv[3]
    base = f"{ep}/{bucket}"
    if cmd == "mkbucket-lock":
        r, b = request("PUT", base, headers={"x-amz-bucket-object-lock-enabled": "true"})
        ok = r.status // 100 == 2 or (r.status == 409 and b"BucketAlreadyOwnedByYou" in b)
    elif cmd == "policy":
        pol = backup_policy(bucket, argv[4], argv[5:])
        r, b = request("PUT", base + "?policy", json.dumps(pol).encode())
        ok = r.status // 100 == 2
    elif cmd == "lock-config":
        r, b = request("GET", base + "?object-lock")
        print(b.decode(errors="replace"))
        ok = r.status // 100 == 2
    elif cmd == "versions":
        q = "versions&prefix=" + urllib.parse.quote(argv[4], safe="")
        r, b = request("GET", base + "?" + q)
        ok = r.status // 100 == 2
        if ok:
            for el in ET.fromstring(b):
                kind = {NS + "Version": "version", NS + "DeleteMarker": "marker"}.get(el.tag)
                if kind:
                    print(f"{el.findtext(NS + 'Key')}\t{el.findtext(NS + 'VersionId')}\t{kind}")
    elif cmd == "head":
        r, b = request("HEAD", base + "/" + urllib.parse.quote(argv[4]))
        print(r.status)
        for k, v in r.getheaders():
            if k.lower().startswith("x-amz-object-lock"):
                print(f"{k.lower()}: {v}")
        ok = r.status // 100 == 2
    elif cmd == "delete":
        url = base + "/" + urllib.parse.quote(argv[4])
        hdrs = {}
        if len(argv) > 5:
            url += "?versionId=" + urllib.parse.quote(argv[5], safe="")
        if len(argv) > 6 and argv[6] == "bypass":
            hdrs["x-amz-bypass-governance-retention"] = "true"
        r, b = request("DELETE", url, headers=hdrs)
        print(r.status, code_of(b))
        ok = r.status // 100 == 2
    else:
        sys.exit(__doc__)
    if not ok:
        sys.stderr.write(f"s3admin: {cmd}: HTTP {r.status}: {b[:500]!r}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
