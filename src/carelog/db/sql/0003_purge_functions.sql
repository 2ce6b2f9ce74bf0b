-- The purge functions again, now flagging the Merkle leaves of the events they remove, so
-- the tree keeps its hashes and still verifies after retention.

CREATE OR REPLACE FUNCTION app.audit_purge(p_actions text[], p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_org uuid := app.current_org_id();
    v_deleted bigint;
BEGIN
    IF v_org IS NULL THEN
        RAISE EXCEPTION 'audit_purge needs an organization in context' USING ERRCODE = '42501';
    END IF;
    IF p_before > now() - interval '1 day' THEN
        RAISE EXCEPTION 'audit_purge refuses to delete events younger than one day'
            USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM public.audit_legal_holds h
               WHERE h.org_id = v_org AND h.released_at IS NULL AND h.data_subject_id IS NULL) THEN
        RETURN 0;
    END IF;
    PERFORM set_config('carelog.audit_purge', 'on', true);
    WITH gone AS (
        DELETE FROM public.audit_logs a
        WHERE a.org_id = v_org AND a.created_at < p_before AND a.action = ANY (p_actions)
          AND NOT EXISTS (SELECT 1 FROM public.audit_legal_holds h
                          WHERE h.org_id = v_org AND h.released_at IS NULL
                            AND h.data_subject_id = a.data_subject_id)
        RETURNING a.id
    ), flagged AS (
        UPDATE public.audit_seals s SET purged = true
        FROM gone WHERE s.org_id = v_org AND s.event_id = gone.id
        RETURNING 1
    )
    SELECT count(*) INTO v_deleted FROM gone;
    PERFORM set_config('carelog.audit_purge', 'off', true);
    RETURN v_deleted;
END $$;

CREATE OR REPLACE FUNCTION app.audit_drop_expired_partitions(p_before timestamptz) RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part record;
    dropped text[] := '{}';
    upper_bound timestamptz;
BEGIN
    IF p_before > now() - interval '1 day' THEN
        RAISE EXCEPTION 'refusing to drop partitions younger than one day' USING ERRCODE = '22023';
    END IF;
    FOR part IN
        SELECT c.oid, c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'public.audit_logs'::regclass AND c.relname <> 'audit_logs_default'
    LOOP
        upper_bound := substring(part.bound from 'TO \(''([^'']+)''\)')::timestamptz;
        CONTINUE WHEN upper_bound IS NULL OR upper_bound > p_before;
        PERFORM set_config('carelog.audit_purge', 'on', true);
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM public.audit_legal_holds h
            WHERE h.released_at IS NULL AND EXISTS (
                SELECT 1 FROM public.audit_logs a
                WHERE a.org_id = h.org_id AND a.created_at < upper_bound
                  AND (h.data_subject_id IS NULL OR a.data_subject_id = h.data_subject_id)));
        EXECUTE format(
            'UPDATE public.audit_seals s SET purged = true FROM public.%I p '
            'WHERE s.org_id = p.org_id AND s.event_id = p.id', part.relname);
        EXECUTE format('DROP TABLE public.%I', part.relname);
        dropped := dropped || part.relname::text;
    END LOOP;
    PERFORM set_config('carelog.audit_purge', 'off', true);
    RETURN dropped;
END $$;
