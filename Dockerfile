# migctl: the API served by gunicorn, as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
# The wheel force-includes these (pyproject.toml): the example project and migctl's own
# control-schema migrations. What else the context holds is cut by .dockerignore.
COPY examples ./examples
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MIGCTL_DATA_DIR=/var/lib/migctl \
    MIGCTL_BIND=0.0.0.0:8000
RUN useradd --system --uid 10001 --home-dir /var/lib/migctl --create-home migctl
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER migctl
WORKDIR /var/lib/migctl
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"]
CMD ["migctl", "serve"]
