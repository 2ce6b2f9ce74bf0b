-- Back to the SQL-language look-up of migration 0001 (planned on every call).
CREATE OR REPLACE FUNCTION app.current_org_role() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT m.role FROM public.user_org_memberships m
    WHERE m.org_id = app.current_org_id()
      AND m.workos_user_id = app.current_user_id()
      AND m.status = 'active'
$$;
