"""The ``fbmkto`` Airflow plugin: one FastAPI app mounted by the api-server at ``/fbmkto``.

Each feature adds its own router to :data:`app` from its own module (webhooks here; a status page may add
its router beside it).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI

from airflow_provider_fbmkto.plugins.webhooks import build_router


def create_app() -> FastAPI:
    """A fresh app with every router of the plugin (tests build their own)."""
    application = FastAPI(title="fbmkto", docs_url=None, redoc_url=None, openapi_url=None)
    application.include_router(build_router())
    return application


app = create_app()


class FbmktoPlugin(AirflowPlugin):
    """Registers the fbmkto FastAPI app with the api-server."""

    name = "fbmkto"
    fastapi_apps = [{"app": app, "url_prefix": "/fbmkto", "name": "fbmkto"}]
