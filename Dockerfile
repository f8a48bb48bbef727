# syntax=docker/dockerfile:1
# One image for every component; the entrypoint is the `agentlane` CLI, so the command picks the
# component: `docker run IMAGE runner`, `… command-service`, `… projector`, `… gateway`, `… migrate`.

# ---- build: a virtualenv with the pinned dependencies and agentlane's wheel --------------------
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /app
# The dependency layer changes only when a pin does: pyproject.toml's dependencies, every version
# fixed by constraints.txt (the project's pins, the same ones the test suite installs).
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install --constraint constraints.txt --requirement /tmp/requirements.txt \
      setuptools wheel
COPY agentlane/ agentlane/
COPY command_service/ command_service/
COPY runners/ runners/
COPY projector/ projector/
COPY gateway/ gateway/
# The image runs what a user installs: the wheel (the migrations ride in it as package data of
# agentlane/ddl/), not the source tree. The build tools leave the virtualenv afterwards.
RUN pip wheel --no-deps --no-build-isolation --constraint constraints.txt --wheel-dir /tmp/wheels . \
 && pip install --no-deps --constraint constraints.txt /tmp/wheels/agentlane-*.whl \
 && pip check \
 && pip uninstall --yes setuptools wheel pip

# ---- runtime: the virtualenv alone (no source tree), no compilers, no pip, not root ----------
FROM python:3.11.14-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AGENTLANE_LOG_FORMAT=json \
    PORT=8080
RUN python -m pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 agentlane \
 && useradd --system --uid 10001 --gid agentlane --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin agentlane
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# Every component serves /healthz on $PORT (run_service); compose and Kubernetes probe /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8080')}/healthz\", timeout=2)"]
ENTRYPOINT ["agentlane"]
CMD ["--help"]
