# Image for the collector and workers in docker-compose.yml (the embedded default needs no image).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY fleet ./fleet
COPY schemas ./schemas
COPY clickhouse ./clickhouse
RUN pip install --no-cache-dir -e .  # editable: schemas/ and clickhouse/ are read from /app
ENV DENOMAS_DATA_DIR=/data
