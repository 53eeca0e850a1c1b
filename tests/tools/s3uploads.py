#!/usr/bin/env python3
"""List the incomplete multipart uploads of a bucket (ListMultipartUploads),
one "key<TAB>upload-id" per line, using the harness's SigV4 client:

    python3 s3uploads.py ENDPOINT BUCKET [PREFIX]

Needs RGW_S3 (tools/rgw.sh's env) and its key variables in the environment.
"""
import importlib.util
import os
import sys
import urllib.parse
import xml.etree.ElementTree as ET

spec = importlib.util.spec_from_file_location("s3", os.environ["RGW_S3"])
s3 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(s3)

endpoint, bucket = sys.argv[1], sys.argv[2]
prefix = sys.argv[3] if len(sys.argv) > 3 else ""
q = "uploads" + ("&prefix=" + urllib.parse.quote(prefix, safe="") if prefix else "")
r = s3.request("GET", f"{endpoint.rstrip('/')}/{bucket}/?{q}")
body = r.read()
if r.status // 100 != 2:
    sys.exit(f"s3uploads: HTTP {r.status}: {body[:500]!r}")
ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
for u in ET.fromstring(body).iter(ns + "Upload"):
    print(u.findtext(ns + "Key") + "\t" + u.findtext(ns + "UploadId"))
