# The peakscale controller image. Not built in CI (no container engine there): kept minimal.
#   docker build -t ghcr.io/peakscale/peakscale:0.1.0 .
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
# dependencies first (cached layer), exactly as locked, without the test tools
RUN uv sync --frozen --no-dev --no-install-project
COPY autoscaler/ autoscaler/
COPY stacks/ stacks/
COPY data/ data/
RUN uv sync --frozen --no-dev

FROM python:3.11-slim
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin peakscale
WORKDIR /app
COPY --from=build --chown=10001:10001 /app /app
ENV PATH="/app/.venv/bin:${PATH}" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["peakscale", "controller"]
CMD ["--help"]
