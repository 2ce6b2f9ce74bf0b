-- Row-level security for every table, FORCEd so the owner obeys it too.
--
-- Two runtime roles, each with its own policies:
--   {{app}}     a signed-in person (or an anonymous visitor): rows of the current organization
--               (app.org_id) only while app.user_id is an active member of it, narrowed per
--               table to what that person may see; public rows where the product needs them.
--   {{system}}  webhooks and jobs: rows of the explicitly set organization, nothing else.
-- Policies are permissive and OR'd per role, so each role gets exactly one policy per command
-- it may run: one loose policy cannot open a table. Column privileges (in the grants file)
-- decide WHICH columns a role may write: that is what stops role escalation and self-approval.
-- Public reads: categories, published profiles, active events.

-- ---------------------------------------------------------------- global tables
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY organizations_app_select ON organizations FOR SELECT TO {{app}}
    USING (id IN (SELECT m.org_id FROM public.user_org_memberships m
                  WHERE m.workos_user_id = app.current_user_id() AND m.status = 'active'));
CREATE POLICY organizations_app_update ON organizations FOR UPDATE TO {{app}}
    USING (id = app.current_org_id() AND app.is_org_admin())
    WITH CHECK (id = app.current_org_id() AND app.is_org_admin());
CREATE POLICY organizations_system_all ON organizations FOR ALL TO {{system}}
    USING (id = app.current_org_id()) WITH CHECK (id = app.current_org_id());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_app_select ON users FOR SELECT TO {{app}}
    USING (workos_user_id = app.current_user_id());
CREATE POLICY users_app_update ON users FOR UPDATE TO {{app}}
    USING (workos_user_id = app.current_user_id())
    WITH CHECK (workos_user_id = app.current_user_id());
-- The WorkOS directory sync maintains the user mirror; users belong to no single organization.
CREATE POLICY users_system_all ON users FOR ALL TO {{system}} USING (true) WITH CHECK (true);

ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
CREATE POLICY roles_app_select ON roles FOR SELECT TO {{app}}
    USING (workos_user_id = app.current_user_id());
CREATE POLICY roles_system_all ON roles FOR ALL TO {{system}} USING (true) WITH CHECK (true);

ALTER TABLE categories ENABLE ROW LEVEL SECURITY;
ALTER TABLE categories FORCE ROW LEVEL SECURITY;
CREATE POLICY categories_public_select ON categories FOR SELECT TO {{app}}, {{system}} USING (true);
CREATE POLICY categories_system_write ON categories FOR INSERT TO {{system}} WITH CHECK (true);
CREATE POLICY categories_system_update ON categories FOR UPDATE TO {{system}}
    USING (true) WITH CHECK (true);

-- ---------------------------------------------------------------- memberships
ALTER TABLE user_org_memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_org_memberships FORCE ROW LEVEL SECURITY;
-- Self-reference only (no membership helper here): no policy recursion.
CREATE POLICY user_org_memberships_app_select ON user_org_memberships FOR SELECT TO {{app}}
    USING (workos_user_id = app.current_user_id());
CREATE POLICY user_org_memberships_system_all ON user_org_memberships FOR ALL TO {{system}}
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

-- ---------------------------------------------------------------- owner-written configuration
-- Members of the organization read; the owning expert writes, and only into the current org.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['expert_setup', 'events', 'schedules', 'scheduling_settings',
                             'blocked_dates', 'profiles']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($f$CREATE POLICY %I ON %I FOR INSERT TO {{app}}
            WITH CHECK (org_id = app.current_org_id() AND app.is_member()
                        AND workos_user_id = app.current_user_id())$f$, t || '_app_insert', t);
        EXECUTE format($f$CREATE POLICY %I ON %I FOR UPDATE TO {{app}}
            USING (org_id = app.current_org_id() AND app.is_member()
                   AND workos_user_id = app.current_user_id())
            WITH CHECK (org_id = app.current_org_id() AND app.is_member()
                        AND workos_user_id = app.current_user_id())$f$, t || '_app_update', t);
        EXECUTE format($f$CREATE POLICY %I ON %I FOR DELETE TO {{app}}
            USING (org_id = app.current_org_id() AND app.is_member()
                   AND workos_user_id = app.current_user_id())$f$, t || '_app_delete', t);
        EXECUTE format($f$CREATE POLICY %I ON %I FOR ALL TO {{system}}
            USING (org_id = app.current_org_id())
            WITH CHECK (org_id = app.current_org_id())$f$, t || '_system_all', t);
    END LOOP;
END $$;

CREATE POLICY expert_setup_app_select ON expert_setup FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member());
CREATE POLICY schedules_app_select ON schedules FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member());
CREATE POLICY scheduling_settings_app_select ON scheduling_settings FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member());
CREATE POLICY blocked_dates_app_select ON blocked_dates FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member());
-- Public: active events and published profiles are the booking site's catalogue.
CREATE POLICY events_app_select ON events FOR SELECT TO {{app}}
    USING (is_active OR (org_id = app.current_org_id() AND app.is_member()));
CREATE POLICY profiles_app_select ON profiles FOR SELECT TO {{app}}
    USING (published OR (org_id = app.current_org_id() AND app.is_member()));

ALTER TABLE schedule_availabilities ENABLE ROW LEVEL SECURITY;
ALTER TABLE schedule_availabilities FORCE ROW LEVEL SECURITY;
CREATE POLICY schedule_availabilities_app_select ON schedule_availabilities FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member());
CREATE POLICY schedule_availabilities_app_write ON schedule_availabilities FOR ALL TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member() AND EXISTS (
        SELECT 1 FROM public.schedules s
        WHERE s.org_id = schedule_availabilities.org_id AND s.id = schedule_availabilities.schedule_id
          AND s.workos_user_id = app.current_user_id()))
    WITH CHECK (org_id = app.current_org_id() AND app.is_member() AND EXISTS (
        SELECT 1 FROM public.schedules s
        WHERE s.org_id = schedule_availabilities.org_id AND s.id = schedule_availabilities.schedule_id
          AND s.workos_user_id = app.current_user_id()));
CREATE POLICY schedule_availabilities_system_all ON schedule_availabilities FOR ALL TO {{system}}
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

-- ---------------------------------------------------------------- expert applications
-- Applicants write the application's content columns only (column grants); status and review
-- fields are the reviewers' (system role), so nobody approves their own application.
ALTER TABLE expert_applications ENABLE ROW LEVEL SECURITY;
ALTER TABLE expert_applications FORCE ROW LEVEL SECURITY;
CREATE POLICY expert_applications_app_select ON expert_applications FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member()
           AND workos_user_id = app.current_user_id());
CREATE POLICY expert_applications_app_insert ON expert_applications FOR INSERT TO {{app}}
    WITH CHECK (org_id = app.current_org_id() AND app.is_member()
                AND workos_user_id = app.current_user_id()
                AND status = 'pending' AND reviewed_by IS NULL AND reviewed_at IS NULL);
CREATE POLICY expert_applications_app_update ON expert_applications FOR UPDATE TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member()
           AND workos_user_id = app.current_user_id() AND status IN ('pending', 'rejected'))
    WITH CHECK (org_id = app.current_org_id() AND app.is_member()
                AND workos_user_id = app.current_user_id());
CREATE POLICY expert_applications_system_all ON expert_applications FOR ALL TO {{system}}
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

-- ---------------------------------------------------------------- meetings and slot holds
-- Guest PII lives here: the host, the org's admins and the guest (from their own org) read it.
-- Bookings are created by the system role (public booking, checkout webhook), never by a
-- client, so a client can never mark a meeting as paid.
ALTER TABLE meetings ENABLE ROW LEVEL SECURITY;
ALTER TABLE meetings FORCE ROW LEVEL SECURITY;
CREATE POLICY meetings_app_select ON meetings FOR SELECT TO {{app}}
    USING ((org_id = app.current_org_id() AND app.is_member()
            AND (workos_user_id = app.current_user_id() OR app.is_org_admin()))
        OR (guest_org_id = app.current_org_id() AND app.is_member()
            AND guest_workos_user_id = app.current_user_id()));
CREATE POLICY meetings_app_update ON meetings FOR UPDATE TO {{app}}
    USING ((org_id = app.current_org_id() AND app.is_member()
            AND workos_user_id = app.current_user_id())
        OR (guest_org_id = app.current_org_id() AND app.is_member()
            AND guest_workos_user_id = app.current_user_id()))
    WITH CHECK ((org_id = app.current_org_id() AND app.is_member()
            AND workos_user_id = app.current_user_id())
        OR (guest_org_id = app.current_org_id() AND app.is_member()
            AND guest_workos_user_id = app.current_user_id()));
CREATE POLICY meetings_system_all ON meetings FOR ALL TO {{system}}
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

ALTER TABLE slot_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE slot_reservations FORCE ROW LEVEL SECURITY;
CREATE POLICY slot_reservations_app_select ON slot_reservations FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member()
           AND (workos_user_id = app.current_user_id() OR app.is_org_admin()));
CREATE POLICY slot_reservations_system_all ON slot_reservations FOR ALL TO {{system}}
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

-- ---------------------------------------------------------------- medical records (PHI)
-- Only the authoring expert, and the patient of the meeting; org admins do not read PHI.
ALTER TABLE records ENABLE ROW LEVEL SECURITY;
ALTER TABLE records FORCE ROW LEVEL SECURITY;
CREATE POLICY records_app_select ON records FOR SELECT TO {{app}}
    USING ((org_id = app.current_org_id() AND app.is_member()
            AND expert_id = app.current_user_id())
        OR (app.is_member() AND EXISTS (
            SELECT 1 FROM public.meetings m
            WHERE m.org_id = records.org_id AND m.id = records.meeting_id
              AND m.guest_workos_user_id = app.current_user_id()
              AND m.guest_org_id = app.current_org_id())));
CREATE POLICY records_app_insert ON records FOR INSERT TO {{app}}
    WITH CHECK (org_id = app.current_org_id() AND app.is_member()
                AND expert_id = app.current_user_id() AND EXISTS (
            SELECT 1 FROM public.meetings m
            WHERE m.org_id = records.org_id AND m.id = records.meeting_id
              AND m.workos_user_id = app.current_user_id()));
CREATE POLICY records_app_update ON records FOR UPDATE TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member()
           AND expert_id = app.current_user_id())
    WITH CHECK (org_id = app.current_org_id() AND app.is_member()
                AND expert_id = app.current_user_id());
CREATE POLICY records_system_all ON records FOR ALL TO {{system}}
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

-- ---------------------------------------------------------------- money
-- Financial rows are written by the system role (Stripe webhooks, billing jobs) only.
-- People read their own rows; owners and admins read the organization's.
CREATE POLICY payment_transfers_app_select ON payment_transfers FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member()
           AND (expert_clerk_user_id = app.current_user_id() OR app.is_org_admin()));
CREATE POLICY transaction_commissions_app_select ON transaction_commissions FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member()
           AND (workos_user_id = app.current_user_id() OR app.is_org_admin()));
CREATE POLICY annual_plan_eligibility_app_select ON annual_plan_eligibility FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member()
           AND (workos_user_id = app.current_user_id() OR app.is_org_admin()));
CREATE POLICY subscription_events_app_select ON subscription_events FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member()
           AND (workos_user_id = app.current_user_id() OR app.is_org_admin()));
CREATE POLICY subscription_plans_app_select ON subscription_plans FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_member()
           AND (billing_admin_user_id = app.current_user_id() OR app.is_org_admin()));
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['payment_transfers', 'transaction_commissions',
                             'annual_plan_eligibility', 'subscription_events', 'subscription_plans']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($f$CREATE POLICY %I ON %I FOR ALL TO {{system}}
            USING (org_id = app.current_org_id())
            WITH CHECK (org_id = app.current_org_id())$f$, t || '_system_all', t);
    END LOOP;
END $$;

-- ---------------------------------------------------------------- audit log
-- Owners and admins read their organization's trail. Inserts must name the current org and the
-- current actor: nobody writes entries attributed to someone else or into another org.
ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
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
