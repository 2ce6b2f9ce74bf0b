-- Tamper evidence (seals, checkpoints, sealer state), webhook idempotency, legacy import.

-- ---------------------------------------------------------------- integrity tables
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_seals', 'audit_checkpoints', 'audit_seal_state']
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
GRANT INSERT ON audit_seals, audit_checkpoints TO {{system}};
GRANT INSERT, UPDATE ON audit_seal_state TO {{system}};

-- Leaves and checkpoints are history: never updated or deleted (a purge only flags a leaf
-- whose event it removed, keeping the hash so the tree still verifies).
CREATE FUNCTION app.refuse_integrity_mutation() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_seals'
       AND current_setting('carelog.audit_purge', true) = 'on'
       AND NEW.org_id = OLD.org_id AND NEW.seq = OLD.seq AND NEW.event_id = OLD.event_id
       AND NEW.leaf_hash = OLD.leaf_hash AND NEW.event_created_at = OLD.event_created_at THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON audit_seals
    FOR EACH ROW EXECUTE FUNCTION app.refuse_integrity_mutation();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION app.refuse_integrity_mutation();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_audit_truncate();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_audit_truncate();

CREATE POLICY audit_seals_owner_purge ON audit_seals FOR ALL TO {{owner}}
    USING (pg_catalog.current_setting('carelog.audit_purge', true) = 'on')
    WITH CHECK (pg_catalog.current_setting('carelog.audit_purge', true) = 'on');

-- ---------------------------------------------------------------- readers behind the writer
-- The transaction horizon: every transaction with a smaller id has finished, so events below
-- it are final (a sealer or stream that stops there never skips a late commit).
CREATE FUNCTION app.txid_horizon() RETURNS bigint
LANGUAGE sql STABLE
AS $$ SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint $$;
GRANT EXECUTE ON FUNCTION app.txid_horizon() TO {{app}}, {{system}};

CREATE POLICY audit_logs_owner_scan_select ON audit_logs FOR SELECT TO {{owner}}
    USING (pg_catalog.current_setting('carelog.audit_scan', true) = 'on');

-- Organizations with events in [p_from, p_to) transaction ids: the sealer (system role, one
-- org per scope) cannot list other organizations by itself.
CREATE FUNCTION app.audit_orgs_with_events(p_from bigint, p_to bigint) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('carelog.audit_scan', 'on', true);
    RETURN QUERY SELECT DISTINCT a.org_id FROM public.audit_logs a
                 WHERE a.txid >= p_from AND a.txid < p_to;
    PERFORM set_config('carelog.audit_scan', 'off', true);
END $$;
REVOKE ALL ON FUNCTION app.audit_orgs_with_events(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.audit_orgs_with_events(bigint, bigint) TO {{system}};

-- ---------------------------------------------------------------- webhooks, legacy import
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stripe_webhook_events', 'legacy_import_runs',
                             'legacy_audit_quarantine']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($f$CREATE POLICY %I ON %I FOR ALL TO {{system}}
            USING (true) WITH CHECK (true)$f$, t || '_system_all', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO {{system}}', t);
    END LOOP;
END $$;
