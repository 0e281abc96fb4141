# syntax=docker/dockerfile:1
# Porte: one image for the web server (gunicorn), the Celery workers and beat. See docker-compose.yml.
#
#   docker build -t porte .
#
# Runtime dependencies only (the `[dev]` extra — moto, pytest, playwright, linters — is never installed), pinned by
# constraints.txt when the repository has one. Runs as an unprivileged user; nothing secret is baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    # The code runs from /app: settings find templates/ and static files beside the packages (BASE_DIR), and the
    # wheel built from pyproject.toml carries only the Python modules.
    PYTHONPATH=/app \
    # Beat schedule and collected static files; the only directory the app writes to.
    PORTE_VAR_DIR=/app/var

WORKDIR /app

RUN groupadd --system --gid 10001 porte \
 && useradd --system --uid 10001 --gid porte --home-dir /app --no-create-home --shell /usr/sbin/nologin porte

# 1. Dependencies, in their own layer (rebuilt only when pyproject.toml or constraints.txt change).
#    `constraints.tx[t]` copies constraints.txt when it exists and nothing otherwise.
COPY pyproject.toml constraints.tx[t] ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && if [ -f constraints.txt ]; then set -- -c constraints.txt; fi \
 && pip install -r /tmp/requirements.txt "$@" \
 && rm /tmp/requirements.txt

# 2. The project itself (its dependencies are already satisfied above).
COPY . .
RUN if [ -f constraints.txt ]; then set -- -c constraints.txt; fi \
 && pip install --no-deps "$@" . \
 && rm -rf build ./*.egg-info

# 3. Static files, collected with the production storage (hashed names + manifest + compressed copies) so both
#    PORTE_PRODUCTION=1 and =0 can serve them. Throw-away keys satisfy the production settings check; they are
#    not kept in the image.
RUN SECRET_KEY="collectstatic-only-$(python -c 'import secrets; print(secrets.token_hex(16))')" \
    PORTE_ENCRYPTION_KEYS="$(python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')" \
    PORTE_PRODUCTION=1 DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 CELERY_BROKER_URL=memory:// \
    python manage.py collectstatic --noinput -v0 \
 && rm -f /tmp/collectstatic.sqlite3 \
 && chown -R porte:porte /app/var

USER porte
EXPOSE 8000

# web by default; docker-compose.yml runs the same image as `celery -A portal worker` and `celery -A portal beat`.
# Gunicorn reads the number of worker processes from WEB_CONCURRENCY.
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
