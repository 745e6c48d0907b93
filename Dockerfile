# Apache Airflow 3 with airflow-provider-fbmkto installed: the image of every Airflow service in
# docker-compose.yaml (and of the emulators in its `emulators` profile).
#
#   docker compose build                 # or: docker build -t airflow-fbmkto .
#
# The Airflow version is the one uv.lock pins (tests/deploy/test_compose.py checks that they agree). The
# package is installed against the versions already in the image (pip list --format=freeze as constraints),
# so adding it never up- or downgrades Airflow, its providers or their dependencies: if the package needed
# other versions, the build would fail here instead of at run time.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11

# --- build the wheel (source stays out of the final image) -------------------------------------------------
FROM ${AIRFLOW_IMAGE} AS wheel
RUN mkdir -p /tmp/src /tmp/wheels
COPY --chown=airflow:0 pyproject.toml README.md /tmp/src/
COPY --chown=airflow:0 airflow_provider_fbmkto /tmp/src/airflow_provider_fbmkto
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels /tmp/src

# --- the runtime image ---------------------------------------------------------------------------------------
FROM ${AIRFLOW_IMAGE}
COPY --from=wheel --chown=airflow:0 /tmp/wheels /tmp/fbmkto-wheels
RUN pip list --format=freeze > /tmp/image-constraints.txt \
 && pip install --no-cache-dir --constraint /tmp/image-constraints.txt \
        "$(ls /tmp/fbmkto-wheels/airflow_provider_fbmkto-*.whl)[postgres]" \
 && rm -rf /tmp/fbmkto-wheels /tmp/image-constraints.txt \
 && mkdir -p /opt/airflow/fbmkto \
 && fbmkto --version \
 && python -c "from importlib.metadata import entry_points as e; \
assert [p for p in e(group='apache_airflow_provider') if p.value.startswith('airflow_provider_fbmkto')], \
'provider entry point missing'"
# Helper scripts of docker-compose.yaml: state DB initialisation, emulators, demo set-up.
COPY --chown=airflow:0 deploy /opt/fbmkto/deploy
