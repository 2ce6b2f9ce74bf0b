-- Downgrade of 0008_audit_policies.sql: the policies exactly as 0001_rls.sql created them.
DROP FUNCTION app.enter_org(text, text);
DROP POLICY audit_logs_app_select ON audit_logs;
DROP POLICY audit_logs_app_insert ON audit_logs;
DROP POLICY audit_logs_system_select ON audit_logs;
DROP POLICY audit_logs_system_insert ON audit_logs;
CREATE POLICY audit_logs_app_select ON audit_logs FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_org_admin());
CREATE POLICY audit_logs_app_insert ON audit_logs FOR INSERT TO {{app}}
    WITH CHECK (org_id = app.current_org_id() AND app.is_member()
                AND workos_user_id = app.current_user_id() AND actor_type = 'user');
CREATE POLICY audit_logs_system_select ON audit_logs FOR SELECT TO {{system}}
    USING (org_id = app.current_org_id());
CREATE POLICY audit_logs_system_insert ON audit_logs FOR INSERT TO {{system}}
    WITH CHECK (org_id = app.current_org_id() AND workos_user_id = app.current_user_id()
                AND actor_type = 'system' AND workos_user_id LIKE 'system:%');
