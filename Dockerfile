# syntax=docker/dockerfile:1
# Two images from one file (docs/deployment.md):
#   docker build --target service -t recsvc:service .   the online half: recsvc serve; no
#                                                       implicit, scipy or other training libraries
#   docker build --target trainer -t recsvc:trainer .   recsvc with the `train` extra: the
#                                                       nightly job, synth, train, evaluate
# Both install through scripts/venv.sh, the script scripts/demo and scripts/test use, into a
# virtual environment in a build stage; the final stages copy only that environment.

# Pinned by tag and by the digest of its multi-architecture index. To move it: `docker buildx
# imagetools inspect python:3.11-slim-bookworm`, then change tag and digest together. A build
# behind a registry mirror may pass
# --build-arg PYTHON_IMAGE=<mirror>/python:<same tag>@<same digest>.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS base
# ORT_DISABLE_TELEMETRY: recent onnxruntime Linux wheels (1.32 here) otherwise write a device
# id under $HOME and send usage events to Microsoft; a bank's service sends nothing out.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ORT_DISABLE_TELEMETRY=1
# A fixed uid/gid (10001) so that volumes and Kubernetes' runAsUser/fsGroup can name it.
RUN groupadd --system --gid 10001 recsvc \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/recsvc --no-create-home \
        --shell /usr/sbin/nologin recsvc \
    && mkdir -p /var/lib/recsvc/data /models \
    && chown -R 10001:10001 /var/lib/recsvc /models

# The source the install needs, and nothing else (.dockerignore keeps data, models, .venv and
# .git out of the context).
FROM base AS source
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/venv.sh scripts/
COPY recsvc recsvc
COPY training training
COPY sandbox sandbox

# The service's environment: the project's own dependencies, no extras. RECSVC_EDITABLE=0: the
# venv must not point back at /src, which the final stages do not have.
FROM source AS service-venv
RUN RECSVC_VENV=/opt/venv RECSVC_EXTRAS= RECSVC_EDITABLE=0 bash scripts/venv.sh

# The trainer's: the same environment plus the `train` extra (implicit, scipy, pyarrow, onnx...).
FROM service-venv AS trainer-venv
RUN RECSVC_VENV=/opt/venv RECSVC_EXTRAS=train RECSVC_EDITABLE=0 bash scripts/venv.sh

FROM base AS trainer
# implicit's wheels link OpenMP (libgomp), which the slim base image does not have.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
COPY --from=trainer-venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    RECSVC_MODELS_DIR=/models \
    MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /var/lib/recsvc
USER 10001:10001
VOLUME ["/models", "/var/lib/recsvc/data"]
ENTRYPOINT ["recsvc"]
# e.g. docker run ... recsvc:trainer nightly --events /var/lib/recsvc/data/events
CMD ["nightly", "--help"]

# The last stage, so that a plain `docker build .` gives the service.
FROM base AS service
COPY --from=service-venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    RECSVC_MODELS_DIR=/models
WORKDIR /var/lib/recsvc
USER 10001:10001
VOLUME ["/models"]
EXPOSE 8000
# Alive, not ready: /readyz (model loaded, Redis answering) is for the load balancer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["recsvc"]
# One worker per container: scale with replicas (every replica follows the model pointer).
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
