"""The query of an AWS resource reference (``awskms:///<key>?region=R&endpoint=URL``,
``aws-secretsmanager:<id>?region=R``): one parser for every reference swarm takes. Pure."""
from __future__ import annotations

import re
from urllib.parse import unquote


def region_and_endpoint(query: str, ref: str, *, what: str, subject: str, arn_of: str) -> tuple[str, str | None]:
    """``(region, endpoint)`` from ``query`` (``region=R&endpoint=URL``, both optional); the region
    defaults to the one in ``ref`` when ``ref`` is an ARN. ValueError with the problem: a parameter
    without a value, an unknown parameter, no region, a region that is not an AWS region name.
    ``what`` names the reference in messages ("an awskms:/// URL"), ``subject`` is who names no
    region ("it"), ``arn_of`` whose ARN would give one ("key"). The endpoint is returned unchecked."""
    params: dict[str, str] = {}
    for item in query.split("&") if query else []:
        name, eq, value = item.partition("=")
        name, value = unquote(name), unquote(value)
        if not eq or not value:
            raise ValueError(f"query parameter {name!r} has no value (write {name}=...)")
        if name not in ("region", "endpoint"):
            raise ValueError(f"unknown parameter {name!r} ({what} takes region and endpoint)")
        params[name] = value
    region = params.get("region")
    if region is None and ref.startswith("arn:"):
        parts = ref.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else None
    if region is None:
        raise ValueError(f"{subject} names no region (add ?region=us-east-1, or give the {arn_of}'s ARN)")
    if not re.fullmatch(r"[a-z0-9-]+", region):
        raise ValueError(f"the region {region!r} is not an AWS region name")
    return region, params.get("endpoint")
