# driftwatch service image: `docker build -t driftwatch .` then
#   docker run -p 8000:8000 -e DRIFTWATCH_DATABASE_URL=postgresql+psycopg://user:pass@db:5432/driftwatch \
#              -e DRIFTWATCH_ADMIN_KEY=... driftwatch
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir build
COPY pyproject.toml README.md alembic.ini ./
COPY driftwatch ./driftwatch
COPY migrations ./migrations
RUN python -m build --wheel --outdir /wheels

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DO_NOT_TRACK=1 \
    PIP_NO_CACHE_DIR=1 \
    DRIFTWATCH_RULES_DIR=/app/rules
RUN useradd --create-home --uid 10001 driftwatch
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY --chown=driftwatch:driftwatch rules ./rules
USER driftwatch
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# The database URL (Postgres in production) and keys come from the environment.
CMD ["driftwatch", "serve", "--host", "0.0.0.0", "--port", "8000"]
