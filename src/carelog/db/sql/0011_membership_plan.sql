-- The membership look-up behind every tenant policy, planned once per session.
--
-- app.current_org_role() was a LANGUAGE sql function whose body reads a table, so PostgreSQL
-- could not inline it and planned its query again on every call: once per statement that a
-- policy guards (the call is hoisted into an InitPlan), ~0.8 ms and ~80 buffer hits of planning
-- each time, more than the membership read itself (2 buffers). A PL/pgSQL body keeps its
-- prepared plan for the life of the session (the pooled connection). Same rights (the
-- caller's), same answer, same volatility.
CREATE OR REPLACE FUNCTION app.current_org_role() RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN (
        SELECT m.role FROM public.user_org_memberships m
        WHERE m.org_id = app.current_org_id()
          AND m.workos_user_id = app.current_user_id()
          AND m.status = 'active'
    );
END
$$;
