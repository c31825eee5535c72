# The peakscale controller image. Not built in CI (no container engine there): kept minimal.
#   docker build -t ghcr.io/peakscale/peakscale:0.1.0 .
# base pinned by digest (python:3.11-slim), uv by version: a rebuild gets the same bits
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
# bytecode compiled at build time: the image runs with PYTHONDONTWRITEBYTECODE, so without it every
# start (the controller's, each kubectl exec of the CLI) would compile every module again
ENV UV_COMPILE_BYTECODE=1
COPY pyproject.toml uv.lock README.md ./
# dependencies first (cached layer), exactly as locked, without the test tools
# the base install only: no extras, so no Pulumi, grpc or matplotlib in the image
RUN uv sync --frozen --no-dev --no-install-project
COPY autoscaler/ autoscaler/
COPY stacks/ stacks/
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin peakscale
WORKDIR /app
COPY --from=build --chown=10001:10001 /app /app
ENV PATH="/app/.venv/bin:${PATH}" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["peakscale", "controller"]
CMD ["--help"]
