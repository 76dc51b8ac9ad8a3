"""Throwaway databases on the real PostgreSQL and MariaDB servers, for tests.

The server URLs come from EYEKIOSK_TEST_POSTGRES_URL and EYEKIOSK_TEST_MARIADB_URL,
defaulting to the local servers. Each test gets its own schema (PostgreSQL) or
database (MariaDB), dropped afterwards, so tests can run in parallel. When a
server is absent the test is skipped with the reason, except under CI=true,
where a missing server fails the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

POSTGRES_URL = os.environ.get(
    "EYEKIOSK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "EYEKIOSK_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)


def _unavailable(kind: str, url: str, error: Exception) -> None:
    where = make_url(url).render_as_string(hide_password=True)
    message = f"{kind} server at {where} is unavailable: {error}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def postgres_database() -> Iterator[str]:
    """Yield a URL whose search_path is a fresh schema, dropped on exit."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as error:
        admin.dispose()
        _unavailable("PostgreSQL", POSTGRES_URL, error)
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def mariadb_database() -> Iterator[str]:
    """Yield the URL of a fresh MariaDB database, dropped on exit."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(MARIADB_URL, connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except OperationalError as error:
        admin.dispose()
        _unavailable("MariaDB", MARIADB_URL, error)
    url = make_url(MARIADB_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE `{name}`"))
        admin.dispose()
