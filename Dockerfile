# HEART Stream: one image for every stage, the topic-init job and the simulator.
#
#   docker build -t heart-stream:local .
#   docker run --rm heart-stream:local worker triage      # the default command
#   docker run --rm heart-stream:local topics create
#
# Every deployment runs `heart worker STAGE`; settings come from HEART_* variables
# (see README.md and deploy/README.md).

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HEART_METRICS_PORT=9101

# A fixed, unprivileged uid/gid, so Kubernetes can check runAsNonRoot without a name lookup.
RUN groupadd --system --gid 10001 heart \
    && useradd --system --uid 10001 --gid heart --home-dir /var/lib/heart --create-home \
        --shell /usr/sbin/nologin heart

WORKDIR /opt/heart-stream
# Only what the package needs: the build context also holds a venv and local data dirs.
COPY pyproject.toml README.md ./
COPY streams/ streams/
COPY schemas/ schemas/
COPY agents/ agents/
COPY policy/ policy/
COPY simulator/ simulator/
COPY cad/ cad/
COPY cli/ cli/
RUN pip install . \
    && rm -rf build ./*.egg-info

# Workers keep Faust's per-app data under HEART_DATA_DIR: it must be writable (Kubernetes
# mounts an emptyDir here, the root filesystem stays read-only).
ENV HEART_DATA_DIR=/var/lib/heart
WORKDIR /var/lib/heart
USER 10001:10001

EXPOSE 9101

# /metrics is served by every `heart worker`; one-shot commands (topics, simulate) disable
# this check in their compose services.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('HEART_METRICS_PORT', '9101'), timeout=4).read()"]

ENTRYPOINT ["heart"]
CMD ["worker", "triage"]
