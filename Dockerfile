# coop's gateway image: the core, every built-in plugin and the Redis client.
#
#   docker build -t coop:0.1.0 .
#   docker run --rm -p 8080:8080 -e COOP_API_KEY=$(openssl rand -hex 24) coop:0.1.0
#
# Configuration: /etc/coop/coop.toml (the default is deploy/image/coop.toml; mount your
# own over it) and the environment (the env:NAME references in it, API keys). The
# gateway refuses to listen on 0.0.0.0 without [server] api_keys, so the default file
# takes its key from $COOP_API_KEY and the container does not start without it.
# docs/deploy.md has compose and Kubernetes.

ARG PYTHON_VERSION=3.11

# -- build: wheels of the core, every plugin and every dependency -----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# pip's cache stays in this stage (the build backend is fetched once, not per plugin).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY plugins ./plugins
# The plugins are distributions of this repository (each plugins/*/*/pyproject.toml),
# not on the index: building them in the same command lets ".[all]" find them here.
ARG EXTRAS=all,redis
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN find plugins -mindepth 3 -maxdepth 3 -name pyproject.toml -printf '%h\n' \
    | xargs pip wheel --wheel-dir /wheels ".[${EXTRAS}]"

# -- runtime ------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm
ARG EXTRAS=all,redis
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COOP_CONFIG=/etc/coop/coop.toml \
    XDG_DATA_HOME=/var/lib/coop \
    HOME=/var/lib/coop
# Only the wheels built above (--no-index): their versions are this checkout's.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "llm-coop[${EXTRAS}]" \
    && groupadd --system --gid 10001 coop \
    && useradd --system --uid 10001 --gid coop --home-dir /var/lib/coop --no-create-home coop \
    && mkdir -p /etc/coop /var/lib/coop \
    && chown coop:coop /var/lib/coop
COPY deploy/image/coop.toml /etc/coop/coop.toml
USER 10001:10001
WORKDIR /var/lib/coop
VOLUME ["/var/lib/coop"]
EXPOSE 8080
# /health/ready answers 503 while no model is healthy; urlopen raises on it (exit 1).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["coop"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
