-- Payment references: the organization of every Stripe id recorded at payment time.

-- ---------------------------------------------------------------- the table (org-scoped)
-- The system role (the Stripe webhook) reads and writes the references of the organization it
-- acts for, like any tenant table; its admins read them. The owner may read and add rows only so that the two
-- SECURITY DEFINER functions below can work across organizations; nothing runs as the owner.
ALTER TABLE payment_refs ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_refs FORCE ROW LEVEL SECURITY;
CREATE POLICY payment_refs_system_all ON payment_refs FOR ALL TO {{system}}
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY payment_refs_owner_select ON payment_refs FOR SELECT TO {{owner}} USING (true);
CREATE POLICY payment_refs_owner_insert ON payment_refs FOR INSERT TO {{owner}}
    WITH CHECK (true);
GRANT SELECT, INSERT ON payment_refs TO {{system}};
-- Owners and admins may see which Stripe ids belong to their organization (support work).
CREATE POLICY payment_refs_app_select ON payment_refs FOR SELECT TO {{app}}
    USING (org_id = app.current_org_id() AND app.is_org_admin());
GRANT SELECT ON payment_refs TO {{app}};

-- ---------------------------------------------------------------- which organizations own ids
-- Organization ids only (never a row of another tenant), for the given references; more than
-- one means the id is ambiguous (a Connect account can serve experts of several organizations).
CREATE FUNCTION app.payment_ref_orgs(p_refs text[]) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT r.org_id FROM public.payment_refs r
    WHERE r.ref = ANY (p_refs) AND r.ref <> ''
    ORDER BY r.org_id
$$;
REVOKE ALL ON FUNCTION app.payment_ref_orgs(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.payment_ref_orgs(text[]) TO {{system}};

-- ---------------------------------------------------------------- recorded where ids appear
-- Whoever writes a meeting, an event or a transfer (a member through the API, the webhook),
-- its Stripe ids are routed to the row's organization in the same transaction.
CREATE FUNCTION app.record_payment_refs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_TABLE_NAME = 'meetings' THEN
        INSERT INTO public.payment_refs (ref, org_id, kind)
        SELECT v.ref, NEW.org_id, v.kind FROM (VALUES
            (NEW.stripe_payment_intent_id, 'payment_intent'),
            (NEW.stripe_session_id, 'checkout_session')) AS v(ref, kind)
        WHERE v.ref IS NOT NULL AND v.ref <> ''
        ON CONFLICT DO NOTHING;
    ELSIF TG_TABLE_NAME = 'events' THEN
        INSERT INTO public.payment_refs (ref, org_id, kind)
        VALUES (NEW.id::text, NEW.org_id, 'event') ON CONFLICT DO NOTHING;
    ELSIF TG_TABLE_NAME = 'payment_transfers' THEN
        INSERT INTO public.payment_refs (ref, org_id, kind)
        SELECT v.ref, NEW.org_id, v.kind FROM (VALUES
            (NEW.payment_intent_id, 'payment_intent'),
            (NEW.expert_connect_account_id, 'account')) AS v(ref, kind)
        WHERE v.ref IS NOT NULL AND v.ref <> ''
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION app.record_payment_refs() FROM PUBLIC;
CREATE TRIGGER meetings_payment_refs
    AFTER INSERT OR UPDATE OF stripe_payment_intent_id, stripe_session_id ON meetings
    FOR EACH ROW EXECUTE FUNCTION app.record_payment_refs();
CREATE TRIGGER events_payment_refs AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION app.record_payment_refs();
CREATE TRIGGER payment_transfers_payment_refs
    AFTER INSERT OR UPDATE OF payment_intent_id, expert_connect_account_id ON payment_transfers
    FOR EACH ROW EXECUTE FUNCTION app.record_payment_refs();

-- ---------------------------------------------------------------- what already exists
-- The backfill runs as the owner, which FORCE RLS would show no rows; FORCE is lifted for
-- the three source tables inside this migration's transaction only.
ALTER TABLE meetings NO FORCE ROW LEVEL SECURITY;
ALTER TABLE events NO FORCE ROW LEVEL SECURITY;
ALTER TABLE payment_transfers NO FORCE ROW LEVEL SECURITY;
INSERT INTO payment_refs (ref, org_id, kind)
SELECT ref, org_id, kind FROM (
    SELECT stripe_payment_intent_id AS ref, org_id, 'payment_intent' AS kind FROM meetings
    UNION ALL SELECT stripe_session_id, org_id, 'checkout_session' FROM meetings
    UNION ALL SELECT id::text, org_id, 'event' FROM events
    UNION ALL SELECT payment_intent_id, org_id, 'payment_intent' FROM payment_transfers
    UNION ALL SELECT expert_connect_account_id, org_id, 'account' FROM payment_transfers
) AS existing
WHERE ref IS NOT NULL AND ref <> ''
ON CONFLICT DO NOTHING;
ALTER TABLE meetings FORCE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
ALTER TABLE payment_transfers FORCE ROW LEVEL SECURITY;
