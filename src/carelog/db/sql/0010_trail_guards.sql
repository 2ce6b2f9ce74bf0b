-- 0010: the trail holds under attack.
--
-- 1. The database stamps every event: txid is always the inserting transaction's, and a runtime
--    role cannot date an event outside a small window around the database clock.
-- 2. Retention eligibility is computed here, from the organization's policies and legal holds;
--    only {{maintenance}} may purge, and every purge writes its own record.
-- 3. Export records gain 'aborted' (an export is recorded before its first byte).

-- ---------------------------------------------------------------- the maintenance role
GRANT USAGE ON SCHEMA public, app TO {{maintenance}};
GRANT EXECUTE ON FUNCTION app.current_user_id(), app.current_org_id(), app.current_org_role(),
    app.is_member(), app.is_org_admin() TO {{maintenance}};
GRANT SELECT ON audit_retention_policies, audit_legal_holds TO {{maintenance}};
CREATE POLICY audit_retention_policies_maintenance_select ON audit_retention_policies
    FOR SELECT TO {{maintenance}} USING (org_id = app.current_org_id());
CREATE POLICY audit_legal_holds_maintenance_select ON audit_legal_holds
    FOR SELECT TO {{maintenance}} USING (org_id = app.current_org_id());
-- Imported legacy events keep their original time, so only the maintenance role (the legacy
-- import) may insert them; it reads only what it needs to skip rows already present.
GRANT SELECT, INSERT ON audit_logs TO {{maintenance}};
CREATE POLICY audit_logs_maintenance_insert ON audit_logs FOR INSERT TO {{maintenance}}
    WITH CHECK (source = 'imported');
CREATE POLICY audit_logs_maintenance_select ON audit_logs FOR SELECT TO {{maintenance}}
    USING (org_id = app.current_org_id());

-- ---------------------------------------------------------------- the database dates events
-- txid: no runtime role may name it, so it is always the column default, the inserting
-- transaction's own id (column privileges: every column but txid).
REVOKE INSERT ON audit_logs FROM {{app}}, {{system}}, {{writer}};
GRANT INSERT (id, org_id, workos_user_id, actor_type, action, resource_type, resource_id,
              outcome, data_subject_id, old_values, new_values, metadata, ip_address,
              user_agent, request_id, created_at, source, schema_version)
    ON audit_logs TO {{app}}, {{system}}, {{writer}};
-- created_at: a live event reaches the table within seconds of being made (the writer's
-- batches, a request's own transaction); a spooled one waits out a database outage, and only
-- the writer replays its spool; imported history is the maintenance role's alone. Anything
-- else dated in the past, or in the future, is refused instead of being sealed as if true.
-- What can be checked of the actor without trusting the caller: a system actor is a short
-- 'system:<name>', a user id is bounded and printable; attacker-controlled text is bounded.
-- Declarative (evaluated per row without a trigger) so the writer's batches stay cheap.
CREATE POLICY audit_logs_runtime_bounds ON audit_logs AS RESTRICTIVE FOR INSERT
    TO {{app}}, {{system}}, {{writer}}
    WITH CHECK (
        created_at <= pg_catalog.clock_timestamp() + interval '5 seconds'
        AND CASE source
                WHEN 'live' THEN created_at >= pg_catalog.now() - interval '10 minutes'
                WHEN 'spool' THEN current_user = {{writer_literal}}
                                  AND created_at >= pg_catalog.now() - interval '7 days'
                ELSE false
            END
        AND (actor_type <> 'system' OR workos_user_id ~ '^system:[a-z0-9][a-z0-9._-]{0,63}$')
        AND length(workos_user_id) <= 256 AND workos_user_id !~ '[[:cntrl:]]'
        AND coalesce(length(resource_type), 0) <= 512
        AND coalesce(length(resource_id), 0) <= 512
        AND coalesce(length(data_subject_id), 0) <= 512
        AND coalesce(length(request_id), 0) <= 128
        AND coalesce(length(user_agent), 0) <= 1024
    );

-- ---------------------------------------------------------------- retention, inside the database
ALTER TABLE audit_action_categories ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_action_categories FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_action_categories_maintenance ON audit_action_categories
    FOR ALL TO {{maintenance}} USING (true) WITH CHECK (true);
CREATE POLICY audit_action_categories_owner_select ON audit_action_categories
    FOR SELECT TO {{owner}} USING (true);
GRANT SELECT, INSERT ON audit_action_categories TO {{maintenance}};
CREATE FUNCTION app.refuse_row_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog
AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_action_categories_append_only BEFORE UPDATE OR DELETE
    ON audit_action_categories FOR EACH ROW EXECUTE FUNCTION app.refuse_row_change();

ALTER TABLE audit_purges ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_purges FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_purges_app_select ON audit_purges FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_org_admin());
CREATE POLICY audit_purges_scoped_select ON audit_purges FOR SELECT TO {{system}}, {{maintenance}}
    USING (org_id = app.current_org_id());
CREATE POLICY audit_purges_owner_insert ON audit_purges FOR INSERT TO {{owner}}
    WITH CHECK (pg_catalog.current_setting('carelog.audit_purge', true) = 'on');
GRANT SELECT ON audit_purges TO {{app}}, {{system}}, {{maintenance}};
CREATE TRIGGER audit_purges_append_only BEFORE UPDATE OR DELETE
    ON audit_purges FOR EACH ROW EXECUTE FUNCTION app.refuse_row_change();
CREATE TRIGGER audit_purges_no_truncate BEFORE TRUNCATE ON audit_purges
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_audit_truncate();

-- The purge functions run as the owner and must see every policy of the organization.
CREATE POLICY audit_retention_policies_owner_select ON audit_retention_policies
    FOR SELECT TO {{owner}} USING (true);

-- Retention of one event: its category's policy, else the organization's '*' policy, else six
-- years and two days (HIPAA's six years of documentation, never a day short).
CREATE FUNCTION app.audit_retention_days(p_org uuid, p_action text) RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(
        (SELECT p.retention_days FROM public.audit_action_categories c
           JOIN public.audit_retention_policies p
             ON p.org_id = p_org AND p.category = c.category
          WHERE c.action = p_action),
        (SELECT p.retention_days FROM public.audit_retention_policies p
          WHERE p.org_id = p_org AND p.category = '*'),
        2192)
$$;
REVOKE ALL ON FUNCTION app.audit_retention_days(uuid, text) FROM PUBLIC;

-- Whether one event may be deleted now: past its retention (never younger than a day), and no
-- active hold of its organization covers it.
CREATE FUNCTION app.audit_event_expired(p_org uuid, p_action text, p_created timestamptz,
                                        p_subject text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_created < now() - make_interval(days => greatest(app.audit_retention_days(p_org, p_action), 1))
       AND NOT EXISTS (SELECT 1 FROM public.audit_legal_holds h
                       WHERE h.org_id = p_org AND h.released_at IS NULL
                         AND (h.data_subject_id IS NULL OR h.data_subject_id = p_subject))
$$;
REVOKE ALL ON FUNCTION app.audit_event_expired(uuid, text, timestamptz, text) FROM PUBLIC;

-- Registering the catalog's categories: new actions only; an existing action keeps its category.
CREATE FUNCTION app.audit_register_actions(p_actions text[], p_categories text[])
RETURNS integer
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
    WITH added AS (
        INSERT INTO public.audit_action_categories (action, category)
        SELECT a, c FROM unnest(p_actions, p_categories) AS u(a, c)
        ON CONFLICT (action) DO NOTHING RETURNING 1)
    SELECT count(*)::integer FROM added
$$;

-- What a purge of the scope organization would delete now, per action (the dry run).
CREATE FUNCTION app.audit_purge_plan()
RETURNS TABLE (action text, expired bigint, purgeable bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_org uuid := app.current_org_id();
BEGIN
    IF v_org IS NULL THEN
        RAISE EXCEPTION 'audit_purge_plan needs an organization in context' USING ERRCODE = '42501';
    END IF;
    PERFORM set_config('carelog.audit_purge', 'on', true);
    RETURN QUERY
        SELECT a.action,
               count(*) FILTER (WHERE a.created_at < now() - make_interval(
                   days => greatest(app.audit_retention_days(v_org, a.action), 1))),
               count(*) FILTER (WHERE app.audit_event_expired(v_org, a.action, a.created_at,
                                                              a.data_subject_id))
        FROM public.audit_logs a WHERE a.org_id = v_org
        GROUP BY a.action ORDER BY a.action;
    PERFORM set_config('carelog.audit_purge', 'off', true);
END $$;

-- The purge: deletes exactly the scope organization's expired, unheld events, flags their Merkle
-- leaves, and records what went in audit_purges, all in the caller's transaction.
CREATE FUNCTION app.audit_purge_expired() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_org uuid := app.current_org_id();
    v_removed jsonb;
    v_count bigint;
    v_oldest timestamptz;
    v_newest timestamptz;
BEGIN
    IF v_org IS NULL THEN
        RAISE EXCEPTION 'audit_purge_expired needs an organization in context'
            USING ERRCODE = '42501';
    END IF;
    PERFORM set_config('carelog.audit_purge', 'on', true);
    IF EXISTS (SELECT 1 FROM public.audit_legal_holds h
               WHERE h.org_id = v_org AND h.released_at IS NULL AND h.data_subject_id IS NULL) THEN
        INSERT INTO public.audit_purges (org_id, kind, purged_by, removed, removed_count)
        VALUES (v_org, 'held', session_user, '{}', 0);
        PERFORM set_config('carelog.audit_purge', 'off', true);
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM public.audit_logs a
        WHERE a.org_id = v_org
          AND app.audit_event_expired(v_org, a.action, a.created_at, a.data_subject_id)
        RETURNING a.id, a.action, a.created_at
    ), flagged AS (
        UPDATE public.audit_seals s SET purged = true
        FROM gone WHERE s.org_id = v_org AND s.event_id = gone.id
        RETURNING 1
    ), per_action AS (
        SELECT g.action, count(*) AS n, min(g.created_at) AS lo, max(g.created_at) AS hi
        FROM gone g GROUP BY g.action
    )
    SELECT coalesce(jsonb_object_agg(p.action, p.n), '{}'::jsonb), coalesce(sum(p.n), 0),
           min(p.lo), max(p.hi)
    INTO v_removed, v_count, v_oldest, v_newest FROM per_action p;
    IF v_count > 0 THEN
        INSERT INTO public.audit_purges
            (org_id, kind, purged_by, removed, removed_count, oldest, newest)
        VALUES (v_org, 'events', session_user, v_removed, v_count, v_oldest, v_newest);
    END IF;
    PERFORM set_config('carelog.audit_purge', 'off', true);
    RETURN v_count;
END $$;

-- Whole monthly partitions go only when every event in them is expired and unheld for its own
-- organization; each organization that lost rows gets a record naming the partition.
CREATE FUNCTION app.audit_drop_expired_partitions() RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part record;
    dropped text[] := '{}';
    upper_bound timestamptz;
    -- Never a month younger than the longest retention anyone may rely on (the default or a
    -- longer policy), even if empty: rows are what the per-event check below protects.
    v_bound timestamptz := now() - make_interval(days => (
        SELECT greatest(2192, coalesce(max(p.retention_days), 0))
        FROM public.audit_retention_policies p));
BEGIN
    PERFORM set_config('carelog.audit_purge', 'on', true);
    FOR part IN
        SELECT c.oid, c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'public.audit_logs'::regclass AND c.relname <> 'audit_logs_default'
        ORDER BY c.relname
    LOOP
        upper_bound := substring(part.bound from 'TO \(''([^'']+)''\)')::timestamptz;
        CONTINUE WHEN upper_bound IS NULL OR upper_bound > v_bound;
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM public.audit_logs a
            WHERE a.tableoid = part.oid AND a.created_at < upper_bound
              AND NOT app.audit_event_expired(a.org_id, a.action, a.created_at, a.data_subject_id));
        INSERT INTO public.audit_purges
            (org_id, kind, purged_by, removed, removed_count, oldest, newest, partition_name)
        SELECT x.org_id, 'partition', session_user, jsonb_object_agg(x.action, x.n), sum(x.n),
               min(x.lo), max(x.hi), part.relname
        FROM (SELECT a.org_id, a.action, count(*) AS n, min(a.created_at) AS lo,
                     max(a.created_at) AS hi
              FROM public.audit_logs a
              WHERE a.tableoid = part.oid AND a.created_at < upper_bound
              GROUP BY a.org_id, a.action) x
        GROUP BY x.org_id;
        EXECUTE format(
            'UPDATE public.audit_seals s SET purged = true FROM public.audit_logs p '
            'WHERE p.tableoid = %s AND s.org_id = p.org_id AND s.event_id = p.id', part.oid);
        EXECUTE format('DROP TABLE public.%I', part.relname);
        dropped := dropped || part.relname::text;
    END LOOP;
    PERFORM set_config('carelog.audit_purge', 'off', true);
    RETURN dropped;
END $$;

-- The caller-supplied-cutoff functions are gone: nobody chooses what is expired.
DROP FUNCTION app.audit_purge(text[], timestamptz);
DROP FUNCTION app.audit_drop_expired_partitions(timestamptz);
DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['app.audit_register_actions(text[], text[])',
                             'app.audit_purge_plan()', 'app.audit_purge_expired()',
                             'app.audit_drop_expired_partitions()']
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO {{maintenance}}', f);
    END LOOP;
END $$;

-- ---------------------------------------------------------------- refusals in the owner's trail
-- A refused request that names a tenant's resource (a meeting id in the path, a token's org)
-- is recorded in the trail of the organization that owns it. The caller cannot see that org
-- (that is why it was refused), so the lookup runs as the owner behind a transaction-local
-- switch; its answer goes only into the audit event, never back to the caller.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organizations', 'meetings', 'events', 'records']
    LOOP
        EXECUTE format($f$CREATE POLICY %I ON %I FOR SELECT TO {{owner}}
            USING (pg_catalog.current_setting('carelog.owner_lookup', true) = 'on')$f$,
            t || '_owner_lookup', t);
    END LOOP;
END $$;
CREATE FUNCTION app.resource_owner_org(p_kind text, p_id uuid) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_org uuid;
BEGIN
    IF p_kind NOT IN ('organizations', 'meetings', 'events', 'records') THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('carelog.owner_lookup', 'on', true);
    EXECUTE format('SELECT %s FROM public.%I WHERE id = $1',
                   CASE p_kind WHEN 'organizations' THEN 'id' ELSE 'org_id' END, p_kind)
        INTO v_org USING p_id;
    PERFORM set_config('carelog.owner_lookup', 'off', true);
    RETURN v_org;
END $$;
REVOKE ALL ON FUNCTION app.resource_owner_org(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.resource_owner_org(text, uuid) TO {{app}};
