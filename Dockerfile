ARG BASE_IMAGE=python:3.11-slim-bookworm
# containerizer: one image for every service of docker-compose.yml.
#   docker build -t containerizer .                      (python:3.11-slim-bookworm)
#   docker build --build-arg BASE_IMAGE=my/python:3.11 -t containerizer .
# The base image needs Python 3.11+ with the venv module (python:3.11-slim has it; on Debian it is
# the python3-venv package); nothing else is assumed. containerizer is installed into a virtualenv,
# /opt/containerizer, so Debian's externally-managed system Python (PEP 668) is never touched.
#
# Without access to PyPI (no network, or TLS that fails inside the build), build the wheels on the
# host first and install only from them:
#   make wheels        # containerizer, its dependencies and setuptools, into docker/wheels
#   docker build --build-arg PIP_INSTALL_ARGS="--no-index --find-links /src/docker/wheels" \
#       -t containerizer .
# docker/wheels is optional: it is copied when it exists (see .dockerignore), and it is only in the
# build stage, never in the final image. Without a registry for the base image either,
# scripts/base-images.sh makes one with debootstrap (README.md, "With docker-compose").

FROM ${BASE_IMAGE} AS build
# Extra arguments of `pip install`: "" installs from PyPI.
ARG PIP_INSTALL_ARGS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# .dockerignore lets in only pyproject.toml, README.md, config/, tasks/, workers/ and docker/wheels/.
COPY . /src
RUN python3 -m venv /opt/containerizer \
    && /opt/containerizer/bin/python -m pip install ${PIP_INSTALL_ARGS} /src \
    && /opt/containerizer/bin/containerizer version

FROM ${BASE_IMAGE}
# PATH is spelt out: an imported base image (docker import) has no PATH to extend.
ENV PATH=/opt/containerizer/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    VIRTUAL_ENV=/opt/containerizer \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/containerizer /opt/containerizer
# /data is beat's schedule (a named volume there starts with this owner).
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin containerizer \
    && mkdir -p /app /data \
    && chown containerizer:containerizer /data
WORKDIR /app

# Services without the Docker socket (beat, Flower, metrics) run as this user; the ones with it
# run as root in docker-compose.yml, since the socket is root's anyway.
USER containerizer
CMD ["containerizer", "--help"]
