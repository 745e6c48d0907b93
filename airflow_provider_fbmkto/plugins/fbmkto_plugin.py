"""The ``fbmkto`` Airflow plugin: one FastAPI app mounted by the api-server at ``/fbmkto``.

Each feature adds its own router to :data:`app` from its own module (webhooks here; a status page may add
its router beside it).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI

from airflow_provider_fbmkto.plugins.status import build_status_router
from airflow_provider_fbmkto.plugins.webhooks import build_router


def create_app() -> FastAPI:
    """A fresh app with every router of the plugin (tests build their own)."""
    application = FastAPI(title="fbmkto", docs_url=None, redoc_url=None, openapi_url=None)
    application.include_router(build_router())
    application.include_router(build_status_router())
    return application


app = create_app()


def status_href() -> str:
    """URL path of the status page: ``/fbmkto/status`` under the path of Airflow's ``[api] base_url``."""
    from urllib.parse import urlsplit

    from airflow.configuration import conf

    root = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return f"{root}/fbmkto/status"


class FbmktoPlugin(AirflowPlugin):
    """Registers the fbmkto FastAPI app with the api-server."""

    name = "fbmkto"
    fastapi_apps = [{"app": app, "url_prefix": "/fbmkto", "name": "fbmkto"}]
    #: The status page in Airflow's navigation (Browse menu), shown in an iframe at /plugin/fbmkto-status.
    external_views = [
        {
            "name": "FreshBooks → Marketo sync",
            "href": status_href(),
            "url_route": "fbmkto-status",
            "destination": "nav",
            "category": "browse",
        }
    ]
