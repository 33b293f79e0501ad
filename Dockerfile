# syntax=docker/dockerfile:1
# One image for the Agentry operator and the agent runtime (agentry-operator, agentry-runtime).
# Stage 1 builds wheels of the project and its dependencies; stage 2 installs only those
# wheels into a virtualenv on a clean slim base and runs as a numeric non-root user.
# The same wheel build (`pip wheel .`) is exercised by tests/unit/operator/test_image.py.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent_runtime/ agent_runtime/
COPY operator/ operator/
COPY cli/ cli/
COPY hack/agentry_cluster/ hack/agentry_cluster/
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/agentry/bin:$PATH
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/agentry \
    && /opt/agentry/bin/pip install --no-index --find-links /wheels agentry \
    && /opt/agentry/bin/pip uninstall --yes pip setuptools wheel
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
# Every pod spec sets its own command; this default runs the agent runtime.
CMD ["agentry-runtime", "serve"]
