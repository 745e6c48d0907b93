"""Apache Airflow 3 provider: FreshBooks invoicing facts into Marketo.

``get_provider_info()`` is what Airflow's providers manager reads (entry point ``apache_airflow_provider``);
the api-server builds the connection forms from it without importing our hooks.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_SECRET = {"type": ["string", "null"], "format": "password"}
_TEXT = {"type": ["string", "null"]}
_INT = {"type": ["integer", "null"]}


def get_provider_info() -> dict[str, Any]:
    """Provider metadata for Airflow (connection types, forms, hooks, operators, sensors, triggers, CLI)."""
    return {
        "package-name": "airflow-provider-fbmkto",
        "name": "FreshBooks to Marketo",
        "description": "Sync FreshBooks invoices, payments and clients into Marketo activities, companies and leads.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "FreshBooks",
                "external-doc-url": "https://www.freshbooks.com/api",
                "tags": ["service"],
            },
            {
                "integration-name": "Marketo",
                "external-doc-url": "https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/rest-api",
                "tags": ["service"],
            },
        ],
        "hooks": [
            {"integration-name": "FreshBooks", "python-modules": ["airflow_provider_fbmkto.hooks.freshbooks"]},
            {"integration-name": "Marketo", "python-modules": ["airflow_provider_fbmkto.hooks.marketo"]},
        ],
        "operators": [
            {"integration-name": "Marketo", "python-modules": ["airflow_provider_fbmkto.operators.steps"]},
        ],
        "sensors": [
            {"integration-name": "FreshBooks", "python-modules": ["airflow_provider_fbmkto.sensors.freshbooks"]},
            {"integration-name": "Marketo", "python-modules": ["airflow_provider_fbmkto.sensors.marketo"]},
        ],
        "triggers": [
            {"integration-name": "FreshBooks", "python-modules": ["airflow_provider_fbmkto.triggers.freshbooks"]},
            {"integration-name": "Marketo", "python-modules": ["airflow_provider_fbmkto.triggers.marketo"]},
        ],
        "plugins": [{"name": "fbmkto", "plugin-class": "airflow_provider_fbmkto.plugins.fbmkto_plugin.FbmktoPlugin"}],
        "cli": ["airflow_provider_fbmkto.cli.get_airflow_cli_commands"],
        "config": {
            "fbmkto": {
                "description": "Settings the DAG file reads when Airflow parses it "
                "(airflow_provider_fbmkto.dag_factory). Each option's FBMKTO_<OPTION> environment variable, "
                "where set, overrides it.",
                "options": {
                    "retry_delay_seconds": {
                        "description": "First retry delay of a sync task (it doubles on each retry, up to 30 "
                        "minutes). Override: FBMKTO_RETRY_DELAY_SECONDS.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "5",
                        "default": "60",
                    },
                    "export_poll_seconds": {
                        "description": "Seconds between checks of a Marketo bulk export the reconcile task waits "
                        "for. Override: FBMKTO_EXPORT_POLL_SECONDS.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "10",
                        "default": "60",
                    },
                    "event_poll_seconds": {
                        "description": "Seconds between checks for stored FreshBooks webhook events (the events "
                        "DAG's sensor). Override: FBMKTO_EVENT_POLL_SECONDS.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "10",
                        "default": "30",
                    },
                },
            }
        },
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_fbmkto.hooks.freshbooks.FreshBooksHook",
                "hook-name": "FreshBooks",
                "connection-type": "freshbooks",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "API base URL",
                        "login": "OAuth client ID",
                        "password": "OAuth client secret",
                    },
                    "placeholders": {
                        "host": "https://api.freshbooks.com",
                        "login": "your FreshBooks app's client ID",
                        "password": "your FreshBooks app's client secret",
                        "redirect_uri": "https://airflow.example.com/fbmkto/oauth/callback",
                        "account_id": "discovered from users/me when empty",
                        "scopes": "user:profile:read user:clients:read user:invoices:read user:payments:read",
                    },
                },
                "conn-fields": {
                    "redirect_uri": {
                        "label": "Redirect URI",
                        "description": "The https redirect URI registered on the FreshBooks app (no query string).",
                        "schema": _TEXT,
                    },
                    "account_id": {
                        "label": "Account ID",
                        "description": "FreshBooks accounting account id; leave empty to discover it from users/me.",
                        "schema": _TEXT,
                    },
                    "webhook_verifier": {
                        "label": "Webhook verifier",
                        "description": "The verifier FreshBooks sent when the webhook was registered (HMAC key).",
                        "schema": _SECRET,
                    },
                    "scopes": {
                        "label": "Scopes",
                        "description": "Space-separated OAuth scopes; default is the four read scopes this sync needs.",
                        "schema": _TEXT,
                    },
                },
            },
            {
                "hook-class-name": "airflow_provider_fbmkto.hooks.marketo.MarketoHook",
                "hook-name": "Marketo",
                "connection-type": "marketo",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "REST base URL",
                        "login": "Client ID",
                        "password": "Client secret",
                    },
                    "placeholders": {
                        "host": "https://123-ABC-456.mktorest.com",
                        "login": "client id of the LaunchPoint custom service",
                        "password": "client secret of the LaunchPoint custom service",
                        "calls_per_window": "97",
                        "max_concurrency": "8",
                        "daily_budget": "45000",
                    },
                },
                "conn-fields": {
                    "calls_per_window": {
                        "label": "Calls per 20 s",
                        "description": "Calls allowed in Marketo's 20-second window (Marketo's limit is 100).",
                        "schema": _INT,
                    },
                    "max_concurrency": {
                        "label": "Concurrent calls",
                        "description": "Calls in flight at once from one process (Marketo's limit is 10).",
                        "schema": _INT,
                    },
                    "daily_budget": {
                        "label": "Daily call budget",
                        "description": "Calls this provider may spend per Marketo day (the quota is 50,000).",
                        "schema": _INT,
                    },
                    "budget_reserve": {
                        "label": "Budget reserve",
                        "description": "Calls kept free for other integrations of the instance.",
                        "schema": _INT,
                    },
                },
            },
        ],
    }
