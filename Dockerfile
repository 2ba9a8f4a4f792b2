FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY . /app
RUN pip install .

# The service settings module lives at the repo root.
ENV PYTHONPATH=/app
CMD ["celery", "-A", "ringrift", "worker", "--concurrency", "1"]
