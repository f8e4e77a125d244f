# One image for every role: `nas serve` (API + dashboard), `nas worker` and the one-shot migration.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The TensorFlow extra: cpu (the CPU wheel) or gpu (TensorFlow with CUDA; `--build-arg TENSORFLOW=gpu`, see the
# gpu profile of docker-compose.yml).
ARG TENSORFLOW=cpu

# Dependencies first, so code edits do not reinstall TensorFlow.
COPY pyproject.toml README.md ./
RUN mkdir -p search_spaces latency_models nas_service \
    && touch search_spaces/__init__.py latency_models/__init__.py nas_service/__init__.py \
    && pip install -e ".[${TENSORFLOW}]" \
    && rm -rf search_spaces latency_models nas_service

COPY alembic.ini ./
COPY migrations migrations
COPY search_spaces search_spaces
COPY latency_models latency_models
COPY nas_service nas_service
# Editable install: the Alembic environment is found beside the package, in /app/migrations.
RUN pip install --no-deps -e .

RUN useradd --create-home --uid 1000 nas && mkdir -p /data/artifacts && chown -R nas /data
USER nas

ENV NAS_ARTIFACTS_DIR=/data/artifacts
EXPOSE 8000
CMD ["nas", "serve", "--host", "0.0.0.0", "--port", "8000"]
