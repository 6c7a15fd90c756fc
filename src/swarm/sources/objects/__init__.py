"""Object storage as a source: one versioned bucket on an S3-compatible endpoint.

``bucket.Bucket`` wraps a boto3 client for one bucket: streaming version listings (page by
page, in the server's order), capability probes (try the call, read 501 / 409 /
NotImplemented), copies of one version (server-side CopyObject when both buckets share an
endpoint and credentials, streamed GET → PUT otherwise), delete markers, and the bucket
configuration calls the policy needs. Every botocore exception is translated into a
``SwarmError`` here; services above never see boto3.

May import: swarm.model, swarm.storage (make_client, translate), swarm.errors, swarm.clock.
"""
from swarm.sources.objects.bucket import (
    SOURCE_MTIME_META,
    SOURCE_VERSION_META,
    Bucket,
    BucketConfig,
    CopyFailed,
    KeyFailure,
)

__all__ = ["SOURCE_MTIME_META", "SOURCE_VERSION_META", "Bucket", "BucketConfig", "CopyFailed", "KeyFailure"]
