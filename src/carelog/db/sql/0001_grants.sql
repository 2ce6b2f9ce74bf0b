-- Table and column privileges of the runtime roles. Nothing here grants UPDATE/DELETE/TRUNCATE
-- on audit_logs, and the financial and PHI history tables get no DELETE at all.

GRANT USAGE ON SCHEMA public TO {{app}}, {{system}};
-- Explicit tables: never the audit partitions (reading a partition directly would skip the
-- parent's policies) nor alembic_version.
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND c.relname <> 'alembic_version'
    LOOP
        EXECUTE format('GRANT SELECT ON public.%I TO {{app}}, {{system}}', t);
    END LOOP;
END $$;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {{app}}, {{system}};

-- {{app}}: people
GRANT UPDATE (name) ON organizations TO {{app}};
GRANT UPDATE (username, image_url, country, theme, language) ON users TO {{app}};
GRANT INSERT, UPDATE, DELETE ON expert_setup, events, schedules, schedule_availabilities,
    scheduling_settings, blocked_dates, profiles TO {{app}};
GRANT INSERT (id, org_id, workos_user_id, expertise, credentials, experience, motivation,
              hourly_rate, website, linkedin, resume) ON expert_applications TO {{app}};
GRANT UPDATE (expertise, credentials, experience, motivation, hourly_rate, website, linkedin,
              resume) ON expert_applications TO {{app}};
GRANT UPDATE (status, cancelled_at, meeting_url) ON meetings TO {{app}};
GRANT INSERT, UPDATE ON records TO {{app}};
GRANT INSERT ON audit_logs TO {{app}};

-- {{system}}: webhooks and jobs, always inside one explicit organization
GRANT INSERT, UPDATE ON organizations, users, categories TO {{system}};
GRANT INSERT, UPDATE, DELETE ON roles, user_org_memberships, expert_setup, expert_applications,
    events, schedules, schedule_availabilities, scheduling_settings, blocked_dates, profiles,
    slot_reservations TO {{system}};
GRANT INSERT, UPDATE ON meetings, records, payment_transfers, transaction_commissions,
    subscription_plans, annual_plan_eligibility TO {{system}};
GRANT INSERT ON subscription_events, audit_logs TO {{system}};
