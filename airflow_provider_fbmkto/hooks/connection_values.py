"""What both hooks do with an Airflow connection's values: register its secrets, read its host as a base URL."""

from __future__ import annotations

from urllib.parse import urlsplit


def mask(*values: str | None) -> None:
    """Register values with Airflow's secrets masker (task logs, rendered fields); no-op outside Airflow."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - Airflow is a dependency; keep the hooks usable without the SDK
        return
    for value in values:
        if value:
            mask_secret(value)


def base_url(host: str, port: int | None, *, drop_suffixes: tuple[str, ...] = ()) -> str:
    """The connection's host as ``scheme://host[:port][/path]``: ``https://`` when no scheme is given, no trailing
    slash, the connection's port added when the host names none, and any of ``drop_suffixes`` (e.g. a pasted
    ``/rest/v1``) removed so paths can be appended."""
    url = host.strip().rstrip("/")
    if "://" not in url:
        url = f"https://{url}"
    for suffix in drop_suffixes:
        url = url.removesuffix(suffix)
    parts = urlsplit(url)
    if port and parts.port is None:
        url = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return url
