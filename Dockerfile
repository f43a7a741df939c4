FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md beat_schedule.py ./
COPY pm_arb_tasks ./pm_arb_tasks
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
