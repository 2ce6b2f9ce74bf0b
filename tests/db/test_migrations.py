"""Migrations: one head, a full round trip on an empty database, and no drift from the models."""

from __future__ import annotations

import sqlalchemy as sa

from carelog.db import migrate
from carelog.db.engine import Database
from carelog.db.schema import Base
from dbtools import TestServer


def _public_tables(db: Database) -> set[str]:
    with db.sync_engine("admin").connect() as conn:
        return set(
            conn.execute(
                sa.text("select tablename from pg_tables where schemaname = 'public'")
            ).scalars()
        )


def test_single_head() -> None:
    assert len(migrate.head_revisions()) == 1


def test_round_trip_on_an_empty_database(pg: TestServer) -> None:
    name = pg.create_database()
    db = pg.database(name)
    try:
        assert migrate.current(db) is None
        migrate.upgrade(db)
        migrate.upgrade(db)  # idempotent
        assert migrate.current(db) == migrate.head_revisions()[0]
        assert set(Base.metadata.tables) <= _public_tables(db)
        migrate.downgrade(db, "base")
        assert migrate.current(db) is None
        assert _public_tables(db) <= {"alembic_version"}
        with db.sync_engine("admin").connect() as conn:
            types = (
                conn.execute(
                    sa.text(
                        "select typname from pg_type where typname in ('day', 'payment_transfer_status_enum')"
                    )
                )
                .scalars()
                .all()
            )
            assert types == []
            assert conn.execute(sa.text("select to_regnamespace('app')")).scalar() is None
        migrate.upgrade(db)
        assert migrate.current(db) == migrate.head_revisions()[0]
        assert migrate.drift(db) == []
    finally:
        db.close()
        pg.drop_database(name)


def test_models_and_migrations_agree(fresh_db: Database) -> None:
    assert migrate.drift(fresh_db) == []


def test_objects_are_owned_by_the_owner_role(fresh_db: Database) -> None:
    owner = fresh_db.settings.roles.owner
    with fresh_db.sync_engine("admin").connect() as conn:
        others = conn.execute(
            sa.text(
                "select c.relname, pg_get_userbyid(c.relowner) from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname in ('public', 'app') and c.relkind in ('r', 'p', 'v', 'S') "
                "and pg_get_userbyid(c.relowner) <> :o"
            ),
            {"o": owner},
        ).all()
    assert others == []


def test_updated_at_is_maintained_by_the_database(fresh_db: Database) -> None:
    with fresh_db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                "insert into organizations (workos_org_id, slug, name, type, updated_at) "
                "values ('org_t', 't', 'T', 'clinic', now() - interval '1 day')"
            )
        )
        before = conn.execute(
            sa.text("select updated_at from organizations where slug='t'")
        ).scalar()
    with fresh_db.sync_engine("admin").begin() as conn:
        conn.execute(sa.text("update organizations set name = 'T2' where slug = 't'"))
        after = conn.execute(
            sa.text("select updated_at from organizations where slug='t'")
        ).scalar()
    assert after > before


def test_audit_partitions_exist_for_the_coming_year(fresh_db: Database) -> None:
    with fresh_db.sync_engine("admin").connect() as conn:
        parts = (
            conn.execute(
                sa.text(
                    "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                    "where i.inhparent = 'audit_logs'::regclass"
                )
            )
            .scalars()
            .all()
        )
    assert "audit_logs_default" in parts
    assert len(parts) >= 13
