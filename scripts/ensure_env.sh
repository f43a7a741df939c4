#!/usr/bin/env bash
# First run: create .env with paper trading and a generated Flower password, never overwriting.
set -euo pipefail
if [ ! -f .env ]; then
  cp .env.example .env
  echo ">> created .env from .env.example (paper trading)"
fi
if ! grep -q '^FLOWER_BASIC_AUTH=..*:..*' .env; then
  password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
  sed -i '/^FLOWER_BASIC_AUTH=/d' .env
  echo "FLOWER_BASIC_AUTH=operator:${password}" >> .env
  echo ">> generated a Flower login in .env (user: operator; the password is in .env)"
fi
