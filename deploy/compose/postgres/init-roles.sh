#!/usr/bin/env bash
# Runs once, when the postgres volume is first initialised: one login role and one schema per
# service, each schema owned by its role (the migrations run as that role). Passwords come from
# the environment (docker-compose.yml passes them from .env) and reach psql as variables, so no
# password is ever spliced into SQL text.
set -euo pipefail

create_service_role() {
  local role="$1" password="$2"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
       -v role="$role" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'password') \gexec
SELECT format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', :'role', :'role') \gexec
SELECT format('ALTER ROLE %I SET search_path = %I', :'role', :'role') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec
SQL
}

create_service_role auth "$AUTH_DB_PASSWORD"
create_service_role chat "$CHAT_DB_PASSWORD"
create_service_role export "$EXPORT_DB_PASSWORD"
create_service_role sync "$SYNC_DB_PASSWORD"
