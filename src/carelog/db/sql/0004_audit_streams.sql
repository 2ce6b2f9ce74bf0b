-- Audit log streams: per-destination cursors, and the one narrow read path across organizations.

-- ---------------------------------------------------------------- cursors (system role only)
ALTER TABLE audit_stream_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_stream_cursors FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_stream_cursors_system_all ON audit_stream_cursors FOR ALL TO {{system}}
    USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE ON audit_stream_cursors TO {{system}};
CREATE TRIGGER audit_stream_cursors_touch BEFORE UPDATE ON audit_stream_cursors
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- ---------------------------------------------------------------- reading behind the writer
-- Committed events of every organization after a position, in (txid, created_at, id) order,
-- stopping at the transaction horizon: every transaction below it has finished, so the rows
-- read are final and a transaction still running (a late commit) is read on a later call,
-- never skipped. The caller's horizon is only an upper bound: the function never reads past
-- its own. SECURITY DEFINER because the system role sees one organization at a time; it is
-- executable by the system role only and returns nothing but audit rows in stream order.
CREATE FUNCTION app.audit_stream_read(
    p_after_txid bigint,
    p_after_created_at timestamptz,
    p_after_id uuid,
    p_horizon bigint,
    p_limit integer
) RETURNS SETOF public.audit_logs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_horizon bigint := LEAST(p_horizon, app.txid_horizon());
BEGIN
    IF p_after_txid IS NULL OR p_after_created_at IS NULL OR p_after_id IS NULL
       OR p_horizon IS NULL OR p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'audit_stream_read: a full position and a limit of 1..10000 are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('carelog.audit_scan', 'on', true);
    RETURN QUERY
        SELECT a.* FROM public.audit_logs a
        WHERE a.txid >= p_after_txid AND a.txid < v_horizon
          AND (a.txid, a.created_at, a.id) > (p_after_txid, p_after_created_at, p_after_id)
        ORDER BY a.txid, a.created_at, a.id
        LIMIT p_limit;
    PERFORM set_config('carelog.audit_scan', 'off', true);
END $$;
REVOKE ALL ON FUNCTION app.audit_stream_read(bigint, timestamptz, uuid, bigint, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.audit_stream_read(bigint, timestamptz, uuid, bigint, integer)
    TO {{system}};

-- How far a stream is behind: committed events after its position and the oldest one's time.
CREATE FUNCTION app.audit_stream_lag(
    p_after_txid bigint,
    p_after_created_at timestamptz,
    p_after_id uuid
) RETURNS TABLE (pending bigint, oldest timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('carelog.audit_scan', 'on', true);
    RETURN QUERY
        SELECT count(*), min(a.created_at) FROM public.audit_logs a
        WHERE a.txid >= p_after_txid
          AND (a.txid, a.created_at, a.id) > (p_after_txid, p_after_created_at, p_after_id);
    PERFORM set_config('carelog.audit_scan', 'off', true);
END $$;
REVOKE ALL ON FUNCTION app.audit_stream_lag(bigint, timestamptz, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.audit_stream_lag(bigint, timestamptz, uuid) TO {{system}};
