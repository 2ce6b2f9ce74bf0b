-- audit_logs: monthly range partitions and append-only enforcement.
--
-- Privileges already keep the runtime roles from UPDATE/DELETE/TRUNCATE; these triggers also
-- stop the owner and ad-hoc maintenance. The one deletion path is the retention purge, which
-- sets carelog.audit_purge for its own transaction (audit core issue).

CREATE FUNCTION app.refuse_audit_mutation() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('carelog.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit events are never changed; retention purges go through the retention function';
END $$;

CREATE FUNCTION app.refuse_audit_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog
AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: TRUNCATE is not allowed'
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_logs_append_only
    BEFORE UPDATE OR DELETE ON public.audit_logs
    FOR EACH ROW EXECUTE FUNCTION app.refuse_audit_mutation();

-- Creates the monthly partitions covering [first_month, first_month + months) and the default
-- partition that catches anything outside them (so no event is ever rejected for its date).
-- Each partition gets its own TRUNCATE guard: TRUNCATE on a partition skips the parent's.
CREATE FUNCTION app.ensure_audit_partitions(first_month date, months integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog
AS $$
DECLARE
    created integer := 0;
    m date;
    part text;
BEGIN
    IF to_regclass('public.audit_logs_default') IS NULL THEN
        EXECUTE 'CREATE TABLE public.audit_logs_default PARTITION OF public.audit_logs DEFAULT';
        EXECUTE 'CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON public.audit_logs_default '
             || 'FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_audit_truncate()';
        EXECUTE 'ALTER TABLE public.audit_logs_default ENABLE ROW LEVEL SECURITY';
        EXECUTE 'ALTER TABLE public.audit_logs_default FORCE ROW LEVEL SECURITY';
    END IF;
    FOR i IN 0 .. months - 1 LOOP
        m := (date_trunc('month', first_month) + make_interval(months => i))::date;
        part := format('audit_logs_y%sm%s', to_char(m, 'YYYY'), to_char(m, 'MM'));
        IF to_regclass('public.' || part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE public.%I PARTITION OF public.audit_logs '
                'FOR VALUES FROM (%L) TO (%L)',
                part, to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
                to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00'
            );
            EXECUTE format(
                'CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON public.%I '
                'FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_audit_truncate()', part
            );
            -- Partitions do not inherit RLS: with no policy of their own, direct access sees
            -- nothing (and the runtime roles have no privilege on them anyway).
            EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', part);
            EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', part);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;
REVOKE ALL ON FUNCTION app.ensure_audit_partitions(date, integer) FROM PUBLIC;

CREATE TRIGGER audit_logs_no_truncate
    BEFORE TRUNCATE ON public.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_audit_truncate();

SELECT app.ensure_audit_partitions((date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date, 15);
