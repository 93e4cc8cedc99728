# syntax=docker/dockerfile:1
#
# One image for the three commands: quota-center (the default), region-agent and quotactl.
#
#   docker build -t quota-center:0.1.0 .
#   docker run --read-only --tmpfs /tmp -e QUOTA_CENTER_REDIS_URL=... -e QUOTA_CENTER_DATABASE_URL=... \
#       -p 50051:50051 -p 9464:9464 quota-center:0.1.0                      # quota-center serve
#   docker run --rm -e QUOTA_CENTER_DATABASE_URL=... quota-center:0.1.0 migrate
#
# The agent is the same image with the command `region-agent serve`; its journal and record log
# must outlive the container, so mount a volume where REGION_AGENT_JOURNAL_PATH points:
#
#   docker run --read-only --tmpfs /tmp -v agent-eu-0:/var/lib/region-agent \
#       -e REGION_AGENT_AGENT_ID=agent-eu-0 -e REGION_AGENT_REGION=eu \
#       -e REGION_AGENT_CENTER_TARGET=center:50051 -p 50061:50061 -p 9465:9465 \
#       --entrypoint region-agent quota-center:0.1.0 serve
#
# Nothing is written outside /tmp and that volume, so the root filesystem can be read-only
# (the Helm chart in helm/quota-center runs it so).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

# uvloop: QUOTA_CENTER_EVENT_LOOP / REGION_AGENT_EVENT_LOOP=uvloop, 10-15 % more calls a second.
ARG EXTRAS=uvloop
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv
WORKDIR /src
# Only what the package is built from (.dockerignore keeps the rest out of the context too): the
# generated gRPC stubs are checked in under proto/quota/v1, so no code generation happens here.
COPY pyproject.toml README.md ./
COPY proto/ proto/
COPY quota_rules/ quota_rules/
COPY quota_center/ quota_center/
COPY quotactl/ quotactl/
COPY region_agent/ region_agent/
COPY devstack/ devstack/
# A regular (non-editable) install: the venv must not point back at /src, which the final stage
# does not have. The bytecode is compiled here, since the final root filesystem is read-only.
RUN /opt/venv/bin/pip install ".[${EXTRAS}]" \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
    && /opt/venv/bin/quota-center --version \
    && /opt/venv/bin/region-agent --version \
    && /opt/venv/bin/quotactl --version


FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="quota-center" \
      org.opencontainers.image.description="Distributed quota and inventory center: quota-center, region-agent and quotactl in one image" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="python:3.11-slim"

# A fixed numeric UID/GID, so that Kubernetes' runAsNonRoot can check it without /etc/passwd
# and volume ownership (fsGroup) is the same on every node.
RUN groupadd --system --gid 10001 quota \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin quota \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/region-agent

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REGION_AGENT_JOURNAL_PATH=/var/lib/region-agent/region-agent.journal

# The agent's data directory: a relative REGION_AGENT_JOURNAL_PATH lands in the volume too.
WORKDIR /var/lib/region-agent
USER 10001:10001

# The Helm chart's default ports: center gRPC, metrics and health, agent gRPC, metrics and health.
# The health ports (plaintext, the gRPC health service alone, for probes that speak no TLS) are
# opened only when QUOTA_CENTER_HEALTH_PORT / REGION_AGENT_HEALTH_PORT name them, as the chart does.
EXPOSE 50051 9464 50052 50061 9465 50062

ENTRYPOINT ["quota-center"]
CMD ["serve"]
