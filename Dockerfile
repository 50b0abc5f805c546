# The serving image: the online half only (no implicit, scipy or training code is installed;
# the `training` package is present in the source tree but its libraries are not).
# Build: docker build -t recsvc .
# Run:   docker run -p 8000:8000 -e RECSVC_REDIS_URL=redis://redis:6379/0 \
#            -v /shared/models:/models -e RECSVC_MODELS_DIR=/models recsvc
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 recsvc
WORKDIR /app
COPY pyproject.toml README.md ./
COPY recsvc ./recsvc
COPY training ./training
RUN pip install --disable-pip-version-check . && rm -rf /root/.cache

USER recsvc
ENV RECSVC_MODELS_DIR=/models
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=1).status != 200)"
# One worker per container: scale with replicas (every replica follows the model pointer).
CMD ["recsvc", "serve", "--host", "0.0.0.0", "--port", "8000"]
