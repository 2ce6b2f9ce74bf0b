-- audit_logs: the policies' calls hoisted into scalar sub-selects.
--
-- audit_logs has one partition per month (and a default one). PostgreSQL applies a policy to
-- every partition it scans, and a call such as app.is_org_admin() (a membership look-up that
-- cannot be inlined) became a one-time filter *per partition*: 16 look-ups for one page. A
-- scalar sub-select without outer references is planned as an InitPlan, which runs once per
-- statement and is shared by every partition's scan (tests/db/test_policy_plans.py counts it
-- through the app role). The conditions are the same ones as in 0001_rls.sql.
DROP POLICY audit_logs_app_select ON audit_logs;
DROP POLICY audit_logs_app_insert ON audit_logs;
DROP POLICY audit_logs_system_select ON audit_logs;
DROP POLICY audit_logs_system_insert ON audit_logs;
CREATE POLICY audit_logs_app_select ON audit_logs FOR SELECT TO {{app}}
    USING (org_id = (SELECT app.current_org_id()) AND (SELECT app.is_org_admin()));
CREATE POLICY audit_logs_app_insert ON audit_logs FOR INSERT TO {{app}}
    WITH CHECK (org_id = (SELECT app.current_org_id()) AND (SELECT app.is_member())
                AND workos_user_id = (SELECT app.current_user_id()) AND actor_type = 'user');
CREATE POLICY audit_logs_system_select ON audit_logs FOR SELECT TO {{system}}
    USING (org_id = (SELECT app.current_org_id()));
CREATE POLICY audit_logs_system_insert ON audit_logs FOR INSERT TO {{system}}
    WITH CHECK (org_id = (SELECT app.current_org_id())
                AND workos_user_id = (SELECT app.current_user_id())
                AND actor_type = 'system' AND workos_user_id LIKE 'system:%');
