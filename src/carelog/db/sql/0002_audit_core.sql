-- Audit core: the group-commit writer's role, export records, retention and legal holds.

-- ---------------------------------------------------------------- the writer role
-- {{writer}} batches events of many organizations into one INSERT, so it cannot use the
-- per-transaction context of the other roles. It is narrow instead: INSERT on audit_logs and
-- nothing else (no SELECT, UPDATE, DELETE, no other table). The audit API fills org, actor and
-- context from the authenticated request, never from caller arguments; tests prove both.
GRANT USAGE ON SCHEMA public TO {{writer}};
GRANT INSERT ON audit_logs TO {{writer}};
CREATE POLICY audit_logs_writer_insert ON audit_logs FOR INSERT TO {{writer}}
    WITH CHECK ((actor_type = 'system') = (workos_user_id LIKE 'system:%'));

-- ---------------------------------------------------------------- export records
ALTER TABLE audit_log_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log_exports FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_log_exports_app_select ON audit_log_exports FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_org_admin());
CREATE POLICY audit_log_exports_app_insert ON audit_log_exports FOR INSERT TO {{app}}
    WITH CHECK (org_id = app.current_org_id() AND app.is_org_admin()
                AND requested_by = app.current_user_id());
CREATE POLICY audit_log_exports_app_update ON audit_log_exports FOR UPDATE TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_org_admin()
           AND requested_by = app.current_user_id())
    WITH CHECK (org_id = app.current_org_id() AND requested_by = app.current_user_id());
CREATE POLICY audit_log_exports_system_all ON audit_log_exports FOR ALL TO {{system}}
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
GRANT SELECT ON audit_log_exports TO {{app}}, {{system}};
GRANT INSERT (id, org_id, requested_by, format, filters, reason) ON audit_log_exports TO {{app}};
GRANT UPDATE (status, row_count, completed_at) ON audit_log_exports TO {{app}};
GRANT INSERT, UPDATE ON audit_log_exports TO {{system}};

-- ---------------------------------------------------------------- retention and legal holds
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_retention_policies', 'audit_legal_holds']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($f$CREATE POLICY %I ON %I FOR SELECT TO {{app}}
            USING (org_id = app.current_org_id() AND app.is_org_admin())$f$, t || '_app_select', t);
        EXECUTE format($f$CREATE POLICY %I ON %I FOR ALL TO {{system}}
            USING (org_id = app.current_org_id())
            WITH CHECK (org_id = app.current_org_id())$f$, t || '_system_all', t);
        EXECUTE format('GRANT SELECT ON %I TO {{app}}, {{system}}', t);
    END LOOP;
END $$;
-- Owners and admins set their org's policies and holds, in their own name; holds are never
-- deleted, only released (the release is part of the record).
CREATE POLICY audit_retention_policies_app_write ON audit_retention_policies FOR INSERT TO {{app}}
    WITH CHECK (org_id = app.current_org_id() AND app.is_org_admin()
                AND set_by = app.current_user_id());
CREATE POLICY audit_retention_policies_app_update ON audit_retention_policies FOR UPDATE TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_org_admin())
    WITH CHECK (org_id = app.current_org_id() AND app.is_org_admin()
                AND set_by = app.current_user_id());
CREATE POLICY audit_legal_holds_app_insert ON audit_legal_holds FOR INSERT TO {{app}}
    WITH CHECK (org_id = app.current_org_id() AND app.is_org_admin()
                AND placed_by = app.current_user_id() AND released_at IS NULL);
CREATE POLICY audit_legal_holds_app_update ON audit_legal_holds FOR UPDATE TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_org_admin() AND released_at IS NULL)
    WITH CHECK (org_id = app.current_org_id() AND app.is_org_admin()
                AND released_by = app.current_user_id());
GRANT INSERT (id, org_id, category, retention_days, set_by) ON audit_retention_policies TO {{app}};
GRANT UPDATE (retention_days, set_by) ON audit_retention_policies TO {{app}};
GRANT INSERT (id, org_id, reason, data_subject_id, placed_by) ON audit_legal_holds TO {{app}};
GRANT UPDATE (released_at, released_by) ON audit_legal_holds TO {{app}};
GRANT INSERT, UPDATE ON audit_retention_policies, audit_legal_holds TO {{system}};

-- ---------------------------------------------------------------- the one deletion path
-- The owner sees and deletes audit rows only while carelog.audit_purge is on, which only the
-- purge function sets (transaction-local), so FORCEd RLS keeps hiding the log from the owner
-- otherwise.
CREATE POLICY audit_logs_owner_purge_select ON audit_logs FOR SELECT TO {{owner}}
    USING (pg_catalog.current_setting('carelog.audit_purge', true) = 'on');
CREATE POLICY audit_logs_owner_purge_delete ON audit_logs FOR DELETE TO {{owner}}
    USING (pg_catalog.current_setting('carelog.audit_purge', true) = 'on');
-- The purge functions run as the owner and must see every hold (FORCEd RLS would hide them,
-- and a hidden hold would let a purge delete what it protects).
CREATE POLICY audit_legal_holds_owner_select ON audit_legal_holds FOR SELECT TO {{owner}}
    USING (true);

-- Partitions ahead of time: the writer never has to create tables (it cannot).
CREATE FUNCTION app.audit_ensure_partitions_ahead() RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT app.ensure_audit_partitions(date_trunc('month', now())::date, 13) $$;
REVOKE ALL ON FUNCTION app.audit_ensure_partitions_ahead() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.audit_ensure_partitions_ahead() TO {{system}};
