# containerizer: one image for every service of docker-compose.yml.
#   docker build -t containerizer .                      (python:3.11-slim-bookworm)
#   docker build --build-arg BASE_IMAGE=my/python:3.11 -t containerizer .
# The base image needs Python 3.11+ with pip; nothing else is assumed.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY tasks ./tasks
COPY workers ./workers
RUN python3 -m pip install . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin containerizer \
    && mkdir -p /data && chown containerizer /data

# Services without the Docker socket (beat, Flower, metrics) run as this user; the ones with it
# run as root in docker-compose.yml, since the socket is root's anyway.
USER containerizer
CMD ["containerizer", "--help"]
