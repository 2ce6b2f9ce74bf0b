-- Data subjects, their audit data keys, erasure requests and the disclosures register.

-- ---------------------------------------------------------------- system role: org-pinned
-- Subjects are resolved at booking time and keys fetched by the audit service, both as system
-- actors pinned to one organization; admins read subjects and erasures of their own org.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['data_subjects', 'audit_subject_keys', 'subject_erasures',
                             'subject_disclosures']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($f$CREATE POLICY %I ON %I FOR ALL TO {{system}}
            USING (org_id = app.current_org_id())
            WITH CHECK (org_id = app.current_org_id())$f$, t || '_system_all', t);
    END LOOP;
END $$;
GRANT SELECT, INSERT, UPDATE ON data_subjects, audit_subject_keys, subject_erasures
    TO {{system}};
GRANT SELECT, INSERT ON subject_disclosures TO {{system}};

CREATE POLICY data_subjects_app_select ON data_subjects FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_org_admin());
CREATE POLICY subject_erasures_app_select ON subject_erasures FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_org_admin());
GRANT SELECT ON data_subjects, subject_erasures TO {{app}};
-- Data keys: no policy for people, so the grant (kept for uniform probing) shows them nothing.
GRANT SELECT ON audit_subject_keys TO {{app}};

-- ---------------------------------------------------------------- disclosures: append-only
CREATE POLICY subject_disclosures_app_select ON subject_disclosures FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_org_admin());
CREATE POLICY subject_disclosures_app_insert ON subject_disclosures FOR INSERT TO {{app}}
    WITH CHECK (org_id = app.current_org_id() AND app.is_org_admin()
                AND recorded_by = app.current_user_id());
GRANT SELECT ON subject_disclosures TO {{app}};
GRANT INSERT (id, org_id, subject_id, recipient, purpose, description, disclosed_at,
              recorded_by) ON subject_disclosures TO {{app}};

-- Not even the table owner rewrites the register (HIPAA keeps it six years).
CREATE FUNCTION app.subject_disclosures_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'subject_disclosures is append-only'
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER subject_disclosures_append_only BEFORE UPDATE OR DELETE ON subject_disclosures
    FOR EACH ROW EXECUTE FUNCTION app.subject_disclosures_append_only();
CREATE TRIGGER subject_disclosures_no_truncate BEFORE TRUNCATE ON subject_disclosures
    FOR EACH STATEMENT EXECUTE FUNCTION app.subject_disclosures_append_only();

-- Records of an erased patient, kept under retention, are deleted once destroy_after passes.
GRANT DELETE ON records TO {{system}};
