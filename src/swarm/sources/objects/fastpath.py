"""A lean data path for streaming one object version between two custom S3 endpoints.

Why: copying small objects between endpoints is CPU bound in botocore's request machinery
(parameter validation, event hooks, payload hashing, response parsing: about 3 ms of CPU per
GET + PUT pair). Here a GET and a PUT are signed directly (AWS SigV4 header auth with
``UNSIGNED-PAYLOAD``; the PUT carries ``Content-MD5`` so the server still verifies the bytes)
and sent on a urllib3 pool. Only plain GetObject / PutObject of bodies that fit in memory
go this way; everything else (bucket calls, listings, tags, multipart, AWS itself) stays on
boto3. Errors are translated into the same swarm errors as ``storage.s3.translate``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import urllib3

from swarm.errors import SwarmError
from swarm.storage.base import ObjectNotFound, StoreAccessDenied, StoreUnavailable

_UNRESERVED = "-_.~"


@dataclass
class Fetched:
    body: bytes
    content_type: str | None
    metadata: dict[str, str]
    headers: dict[str, str]  # content-encoding, cache-control, ... to carry over
    tag_count: int


class SigV4Endpoint:
    """One endpoint + credentials; thread safe."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str | None, pool: int) -> None:
        parts = urlsplit(endpoint)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.access_key, self.secret_key = access_key, secret_key
        self.region = region or "us-east-1"
        self.http = urllib3.PoolManager(maxsize=pool, retries=False,
                                        timeout=urllib3.Timeout(connect=5, read=120))
        self._keys: dict[str, bytes] = {}
        self._mutex = threading.Lock()

    def _signing_key(self, day: str) -> bytes:
        with self._mutex:
            if day not in self._keys:
                k = hmac.new(("AWS4" + self.secret_key).encode(), day.encode(), hashlib.sha256).digest()
                for part in (self.region, "s3", "aws4_request"):
                    k = hmac.new(k, part.encode(), hashlib.sha256).digest()
                self._keys = {day: k}
            return self._keys[day]

    def _request(self, method: str, bucket: str, key: str, query: dict[str, str], headers: dict[str, str],
                 body: bytes | None, what: str) -> Any:
        now = datetime.now(UTC)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        path = "/" + quote(bucket, safe=_UNRESERVED) + ("/" + quote(key, safe="/" + _UNRESERVED) if key else "")
        qs = "&".join(f"{quote(k, safe=_UNRESERVED)}={quote(v, safe=_UNRESERVED)}" for k, v in sorted(query.items()))
        signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
        signed.update({"host": self.host, "x-amz-date": amz_date, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        names = sorted(signed)
        canonical = "\n".join([method, path, qs, "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names),
                               "UNSIGNED-PAYLOAD"])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        sig = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        send = {k: v for k, v in signed.items() if k != "host"}
        send["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                 f"SignedHeaders={';'.join(names)}, Signature={sig}")
        url = self.base + path + (f"?{qs}" if qs else "")
        try:
            resp = self.http.request(method, url, body=body, headers=send, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(f"{what}: cannot reach {self.base} ({exc})", transient=True) from exc
        if resp.status >= 300:
            raise _error(resp.status, resp.data, what, self.base)
        return resp

    def get(self, bucket: str, key: str, version_id: str | None) -> Fetched:
        query = {"versionId": version_id} if version_id else {}
        resp = self._request("GET", bucket, key, query, {}, None, f"get {key}")
        h = {k.lower(): v for k, v in resp.headers.items()}
        meta = {k[len("x-amz-meta-"):]: v for k, v in h.items() if k.startswith("x-amz-meta-")}
        carry = {k: h[k] for k in ("content-encoding", "content-disposition", "content-language", "cache-control")
                 if k in h}
        return Fetched(bytes(resp.data), h.get("content-type"), meta, carry, int(h.get("x-amz-tagging-count") or 0))

    def put(self, bucket: str, key: str, body: bytes, *, content_type: str | None, metadata: dict[str, str],
            headers: dict[str, str], tags: dict[str, str] | None, storage_class: str | None) -> str | None:
        hdrs = dict(headers)
        hdrs["content-md5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        hdrs["content-length"] = str(len(body))
        if content_type:
            hdrs["content-type"] = content_type
        for k, v in metadata.items():
            hdrs[f"x-amz-meta-{k}"] = v
        if tags:
            hdrs["x-amz-tagging"] = urlencode(tags)
        if storage_class:
            hdrs["x-amz-storage-class"] = storage_class
        resp = self._request("PUT", bucket, key, {}, hdrs, body, f"put {key}")
        vid = resp.headers.get("x-amz-version-id")
        return str(vid) if vid else None


def copy_object(ep: SigV4Endpoint, bucket: str, key: str, src_bucket: str, src_key: str, version_id: str,
                storage_class: str | None) -> str | None:
    """Server-side CopyObject of one version, metadata and tags copied as they are."""
    source = "/" + quote(src_bucket, safe=_UNRESERVED) + "/" + quote(src_key, safe="/" + _UNRESERVED)
    hdrs = {"x-amz-copy-source": f"{source}?versionId={quote(version_id, safe=_UNRESERVED)}",
            "x-amz-metadata-directive": "COPY", "x-amz-tagging-directive": "COPY"}
    if storage_class:
        hdrs["x-amz-storage-class"] = storage_class
    resp = ep._request("PUT", bucket, key, {}, hdrs, None, f"copy {src_key}")
    if b"<Error" in resp.data[:200]:  # S3 may report a failed copy inside a 200 response
        raise _error(500, resp.data, f"copy {src_key}", ep.base)
    vid = resp.headers.get("x-amz-version-id")
    return str(vid) if vid else None


def _error(status: int, data: bytes, what: str, where: str) -> SwarmError:
    code = ""
    try:
        code = ET.fromstring(data).findtext("Code") or ""
    except ET.ParseError:
        pass
    if status == 404:
        return ObjectNotFound(f"{what}: not found ({code or status})")
    if status == 403:
        return StoreAccessDenied(f"{what}: access denied by {where} ({code or status})",
                                 hint="Check the access key and secret for this endpoint.")
    transient = status >= 500 or code in ("SlowDown", "RequestTimeout", "Throttling")
    return StoreUnavailable(f"{what}: {where} answered {code or status}", transient=transient)


@dataclass
class VersionPage:
    entries: list[dict[str, Any]]  # in the server's order: Key, VersionId, IsLatest, LastModified, ...
    truncated: bool
    next_key: str | None
    next_version: str | None


def _text(el: ET.Element, name: str) -> str | None:
    child = el.find(name)
    return child.text if child is not None else None


def list_versions_page(ep: SigV4Endpoint, bucket: str, prefix: str, key_marker: str | None,
                       version_marker: str | None, max_keys: int) -> VersionPage:
    """One ListObjectVersions page, parsed with ElementTree (C) instead of botocore's parser:
    listing is most of the cost of an incremental run."""
    query = {"versions": "", "prefix": prefix, "max-keys": str(max_keys)}
    if key_marker:
        query["key-marker"] = key_marker
    if version_marker:
        query["version-id-marker"] = version_marker
    resp = ep._request("GET", bucket, "", query, {}, None, f"list versions under {prefix or '/'}")
    root = ET.fromstring(resp.data)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    entries: list[dict[str, Any]] = []
    for el in root:
        tag = el.tag[len(ns):]
        if tag not in ("Version", "DeleteMarker"):
            continue
        lm = _text(el, ns + "LastModified") or ""
        entries.append({"Key": _text(el, ns + "Key") or "", "VersionId": _text(el, ns + "VersionId"),
                        "IsLatest": (_text(el, ns + "IsLatest") or "").lower() == "true",
                        "LastModified": datetime.fromisoformat(lm.replace("Z", "+00:00")),
                        "ETag": _text(el, ns + "ETag") or "", "Size": int(_text(el, ns + "Size") or 0),
                        "StorageClass": _text(el, ns + "StorageClass") or "STANDARD",
                        "DeleteMarker": tag == "DeleteMarker"})
    truncated = (_text(root, ns + "IsTruncated") or "").lower() == "true"
    return VersionPage(entries, truncated, _text(root, ns + "NextKeyMarker"), _text(root, ns + "NextVersionIdMarker"))
