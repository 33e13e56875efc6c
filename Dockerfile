# syntax=docker/dockerfile:1
# One image per service, from one Dockerfile: `docker build --build-arg SERVICE=chat -t parley/chat .`
#
# build:   uv installs exactly uv.lock's pins (--frozen) for the one service and the workspace
#          members it depends on (contracts, servicekit), as wheels, into /app/.venv
# runtime: python-slim with that venv, the service's migrations and a small entrypoint; no uv,
#          no compiler, no source tree; runs as uid 10001 and writes only to /tmp and /data
#          (a volume for local blobs), so the root filesystem can be mounted read-only
#
#   docker run parley/chat               serve (uvicorn on the service's port)
#   docker run parley/chat migrate       bring the service's schema to head, then exit
#   docker run parley/chat healthcheck   GET /health/live (what HEALTHCHECK runs)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
RUN test -n "$SERVICE" || { echo "--build-arg SERVICE=<auth|chat|export|gateway|sync> is required"; exit 1; }
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# The workspace's manifests first: the third-party layer is rebuilt only when uv.lock changes.
# Every workspace member's manifest is listed (uv reads the whole workspace); tests/test_deploy.py
# fails when a member is missing here.
COPY pyproject.toml uv.lock ./
COPY libs/contracts/pyproject.toml libs/contracts/
COPY libs/servicekit/pyproject.toml libs/servicekit/
COPY libs/parley/pyproject.toml libs/parley/
COPY libs/parley-client/pyproject.toml libs/parley-client/
COPY services/auth/pyproject.toml services/auth/
COPY services/chat/pyproject.toml services/chat/
COPY services/export/pyproject.toml services/export/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/sync/pyproject.toml services/sync/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "$SERVICE"
# Then the sources of the libraries every service stands on, and of this service only
COPY libs/contracts libs/contracts
COPY libs/servicekit libs/servicekit
COPY services/${SERVICE} services/${SERVICE}
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "$SERVICE" \
 && mkdir -p /app/migrations \
 && if [ -d "services/$SERVICE/migrations" ]; then cp -r "services/$SERVICE/migrations/." /app/migrations/; fi \
 && cp "services/$SERVICE/pyproject.toml" /app/service.toml

# DejaVu Sans: the export service writes PDFs with it (a font, not a build tool)
FROM ${PYTHON_IMAGE} AS fonts
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="parley-${SERVICE}" \
      org.opencontainers.image.description="Parley's ${SERVICE} service"
RUN groupadd --system --gid 10001 parley \
 && useradd --system --uid 10001 --gid parley --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin parley \
 && install -d -o 10001 -g 10001 /data
COPY --from=fonts /usr/share/fonts/truetype/dejavu /usr/share/fonts/truetype/dejavu
COPY --from=build /app /app
COPY deploy/docker/entrypoint.py /app/entrypoint.py
ENV PATH=/app/.venv/bin:$PATH \
    PARLEY_SERVICE=${SERVICE} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
WORKDIR /app
USER 10001:10001
# Informational; the entrypoint reads the real port from the service's manifest
EXPOSE 8000-8004
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "/app/entrypoint.py", "healthcheck"]
ENTRYPOINT ["python", "/app/entrypoint.py"]
CMD ["serve"]
