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

-- ---------------------------------------------------------------- entering an organization
-- The request's first statement: set the transaction's context and read the caller's
-- membership in one round trip (it was two: set_config, then a SELECT). SECURITY INVOKER, so
-- the membership is read under user_org_memberships' own policy with the context just set;
-- both settings stay transaction-local (set_config(..., true)), exactly as before.
CREATE FUNCTION app.enter_org(p_user_id text, p_org_id text)
RETURNS TABLE (role text, status text)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.user_id', p_user_id, true);
    PERFORM pg_catalog.set_config('app.org_id', p_org_id, true);
    RETURN QUERY SELECT m.role, m.status FROM public.user_org_memberships m
                 WHERE m.workos_user_id = app.current_user_id()
                   AND m.org_id = app.current_org_id();
END $$;
REVOKE ALL ON FUNCTION app.enter_org(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.enter_org(text, text) TO {{app}};
